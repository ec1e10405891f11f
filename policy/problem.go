package policy

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Problem is one finding about a policy file, located by file, line and column.
// Line and Column are 1-based; zero means unknown.
type Problem struct {
	File    string
	Line    int
	Column  int
	Message string
}

// String formats the problem as "file:line:col: message", the form editors and
// terminals recognise. The column is omitted when it is zero, and the line too
// when it is zero.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteByte(':')
	}
	if p.Line > 0 {
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteByte(':')
		if p.Column > 0 {
			b.WriteString(strconv.Itoa(p.Column))
			b.WriteByte(':')
		}
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	b.WriteString(p.Message)
	return b.String()
}

// LoadError is the error returned when a policy cannot be loaded. It carries
// every problem found, sorted by position, not only the first.
type LoadError struct {
	Problems []Problem
}

// Error returns the problems, one per line.
func (e *LoadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sortProblems orders problems by line, then column, keeping the order in
// which they were found for problems at the same position.
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}
