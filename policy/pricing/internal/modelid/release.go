package modelid

import "strings"

// maxVersion is the number of version components a Release keeps.
const maxVersion = 4

// undated is the date of an id without a snapshot date: an alias such as
// "claude-sonnet-4-5" or "claude-3-5-haiku-latest" names the current snapshot
// of its version, so it ranks above every dated snapshot of that version.
const undated = 99999999

// Release is the place of a model in the history of its family, read from its
// id, so that the newest priced member of a family can be found. The zero
// value is older than every release with a version.
//
// Releases are ordered by version, then by snapshot date:
//
//   - The version is the sequence of numbers of the id's last
//     '/'-separated segment, after its Bedrock region, vendor qualifier and
//     snapshot suffixes are removed (see Neutral): the words of one to three
//     digits, separated by '-' or '.', in order. "claude-opus-4-5" is 4.5,
//     "claude-opus-4-1-20250805" 4.1, "us.anthropic.claude-opus-4-20250514-v1:0"
//     4, "claude-3-opus" 3, "claude-3-5-sonnet-v2" 3.5, "gpt-5.4-mini" 5.4.
//     Longer digit runs are dates or build numbers ("gpt-4-0613"), not part of
//     the version. Versions compare number by number, a missing number
//     counting as 0, so claude-opus-4-5 > claude-opus-4-1 > claude-opus-4 =
//     claude-opus-4-0 > claude-3-opus.
//   - Among ids of the same version, a snapshot date ("-20250805",
//     "@20250805", "-2024-08-06") orders the snapshots, and an id without one
//     ("claude-opus-4-1", "-latest", "@default", a Bedrock "-v1:0" alone)
//     ranks above them all, being the alias of the current snapshot.
//
// Ids that compare equal, such as a model's Bedrock regional profiles, are
// the same release.
type Release struct {
	version [maxVersion]int
	date    int
}

// ReleaseOf returns the release of a catalog key (see Key).
func ReleaseOf(key string) Release {
	key = NoRegion(key)
	for _, v := range vendors {
		if strings.HasPrefix(key, v) {
			key = key[len(v):]
			break
		}
	}
	r := Release{date: undated}
	for {
		b := trimSuffixOnce(key)
		if b == key {
			break
		}
		if d := snapshotDate(key[len(b):]); d != 0 && r.date == undated {
			r.date = d
		}
		key = b
	}
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		key = key[i+1:]
	}
	n := 0
	for w := range strings.FieldsFuncSeq(key, func(c rune) bool { return c == '-' || c == '.' }) {
		if len(w) > 3 || !allDigits(w) {
			continue
		}
		if n == maxVersion {
			break
		}
		v := 0
		for i := 0; i < len(w); i++ {
			v = v*10 + int(w[i]-'0')
		}
		r.version[n] = v
		n++
	}
	return r
}

// snapshotDate returns the date of a snapshot suffix removed by Base
// ("-20250805", "@20250805", "-2024-08-06") as YYYYMMDD, or 0 for another
// suffix.
func snapshotDate(suffix string) int {
	if suffix == "" || (suffix[0] != '-' && suffix[0] != '@') {
		return 0
	}
	s := suffix[1:]
	if len(s) == 10 && s[4] == '-' && s[7] == '-' {
		s = s[:4] + s[5:7] + s[8:]
	}
	if len(s) != 8 || !allDigits(s) || s[0] != '2' {
		return 0
	}
	d := 0
	for i := 0; i < len(s); i++ {
		d = d*10 + int(s[i]-'0')
	}
	return d
}

// Compare returns -1, 0 or +1 as r is older than, the same release as, or
// newer than o.
func (r Release) Compare(o Release) int {
	for i := range r.version {
		if r.version[i] != o.version[i] {
			return sign(r.version[i] - o.version[i])
		}
	}
	return sign(r.date - o.date)
}

func sign(d int) int {
	switch {
	case d < 0:
		return -1
	case d > 0:
		return 1
	}
	return 0
}
