// Package catalogfile is the format of the embedded price catalog, written by
// the generator (internal/gen) and read by package pricing.
//
// The file is gzip-compressed JSON. Every rate is an integer number of pico-USD
// (1e-12 USD) per token, and the web search price is pico-USD per search.
package catalogfile

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
)

// File is the whole catalog.
type File struct {
	// Sources names the source tables and their versions, such as
	// "litellm-2026-03-03+portkey-f654307".
	Sources string `json:"sources"`
	// Unit documents the unit of the numbers, for whoever opens the file.
	Unit string `json:"unit"`
	// Notes says where rates that are not the source tables' come from, such
	// as Anthropic's published pricing page and the date it was read.
	Notes []string `json:"notes,omitempty"`
	// Models is sorted by provider, then model.
	Models []Model `json:"models"`
}

// Model is the price of one model under one provider.
type Model struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
	// Rates are input, output, cache read, cache write 5m and cache write 1h.
	Rates                Rates  `json:"rates"`
	LongContextThreshold int64  `json:"lc_threshold,omitempty"`
	LongContext          *Rates `json:"lc_rates,omitempty"`
	WebSearch            int64  `json:"web_search,omitempty"`
	Source               string `json:"source"`
	Estimated            bool   `json:"estimated,omitempty"`
	Note                 string `json:"note,omitempty"`
}

// Rates are input, output, cache read, cache write 5m and cache write 1h, in
// pico-USD per token.
type Rates [5]int64

// Unit is the text of File.Unit.
const Unit = "integer pico-USD (1e-12 USD) per token; web_search in pico-USD per search"

// Encode writes f as gzip-compressed JSON, one model per line. The output
// depends only on f: the gzip header carries no name and no time.
func Encode(w io.Writer, f *File) error {
	var buf bytes.Buffer
	head, err := json.Marshal(struct {
		Sources string   `json:"sources"`
		Unit    string   `json:"unit"`
		Notes   []string `json:"notes,omitempty"`
	}{f.Sources, f.Unit, f.Notes})
	if err != nil {
		return err
	}
	buf.Write(head[:len(head)-1])
	buf.WriteString(`,"models":[`)
	for i := range f.Models {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
		line, err := json.Marshal(&f.Models[i])
		if err != nil {
			return err
		}
		buf.Write(line)
	}
	buf.WriteString("\n]}\n")
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(buf.Bytes()); err != nil {
		return err
	}
	return zw.Close()
}

// Decode reads a file written by Encode. It returns the decompressed JSON as
// well, which the catalog version is a hash of.
func Decode(gz []byte) (*File, []byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, nil, fmt.Errorf("catalog: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, nil, fmt.Errorf("catalog: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, nil, fmt.Errorf("catalog: %w", err)
	}
	return &f, raw, nil
}
