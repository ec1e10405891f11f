// Package cloudcompat holds, per cloud provider type (Bedrock, Vertex), the
// table of what the cloud accepts of what Anthropic clients send: each
// anthropic-beta value and each beta body field passes, is adapted, or is
// dropped; and applies it to one request with byte-minimal edits (package
// reqbody), so that every byte not adapted reaches the provider as the client
// sent it.
//
// A beta and the body fields it gates are one row of a table and travel as a
// pair: a cloud that is sent context_management without the
// context-management beta answers a hard 400 ("context_management: Extra
// inputs are not permitted"), so dropping the beta drops its fields and
// overriding one half in the policy overrides the other. The top-level
// system blocks are never touched: Claude Code's attribution block stays the
// first entry of its own (WIRE-FORMATS section 2).
//
// Anthropic itself gets every beta verbatim; no table applies to it.
//
// Sources, for every row (third-party reports are cited where the clouds'
// own documentation says nothing):
//
//   - [AWS-MCS] AWS, "Mid-conversation system messages",
//     docs.aws.amazon.com/bedrock/latest/userguide/claude-messages-mid-conversation-system.html:
//     role "system" in messages[] only on Claude Opus 4.8, with no beta
//     header; a 400 invalid_request_error on other models.
//   - [AWS-RR] AWS, "Request and Response" (InvokeModel, Anthropic Claude
//     Messages API): message roles are user and assistant.
//   - [AWS-SO] AWS, "Get validated JSON results from models"
//     (structured-output.md, claude-messages-structured-outputs.html):
//     output_config.format and tools[].strict on InvokeModel, generally
//     available (February 2026), no beta.
//   - [TST] Anthropic, "Tool search tool": the beta is
//     advanced-tool-use-2025-11-20 on the Claude API and
//     tool-search-tool-2025-10-19 on Vertex AI and Bedrock (Invoke API).
//   - [LL] BerriAI/litellm litellm/anthropic_beta_headers_config.json, the
//     "bedrock" (InvokeModel) and "vertex_ai" maps, and the PRs that fixed
//     them: #32658 (Bedrock keeps context_management with the
//     context-management beta), #27534 (compaction on Bedrock InvokeModel),
//     #25835 (Bedrock takes interleaved-thinking-2025-05-14).
//   - [CC33180] anthropics/claude-code#33180: Bedrock answers 400
//     "tools.0.custom.eager_input_streaming: Extra inputs are not permitted".
//   - [CC34802] anthropics/claude-code#34802, can1357/oh-my-pi#5614: Vertex
//     rejects effort-2025-11-24 and adaptive-thinking-2026-01-28.
//   - [CC13770] anthropics/claude-code#13770: Vertex rejects oauth-2025-04-20.
//   - [CC70563] anthropics/claude-code#70563: advisor-tool-2026-03-01
//     rejected upstream.
//   - [PCS] QuantumNous/new-api#2975, BerriAI/litellm#19984: Vertex rejects
//     prompt-caching-scope-2026-01-05.
//   - [S2A] Wei-Shaw/sub2api#3358: Vertex rejects advisor-tool-2026-03-01,
//     prompt-caching-scope-2026-01-05, redact-thinking-2026-02-12,
//     thinking-token-count-2026-05-13.
//   - [VAI] vercel/ai#10981: Vertex rejects structured-outputs-2025-11-13.
//   - [WF4] WIRE-FORMATS section 4 (Envoy AI Gateway's
//     awsBedrockSupportedAnthropicBetas): Bedrock rejects the whole request
//     on any beta it does not know, hence unlisted betas are dropped.
//   - [WF2] WIRE-FORMATS section 2: adaptive thinking needs no beta.
package cloudcompat

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Action is what a table does with a beta or a body field.
type Action string

// The actions.
const (
	// Pass sends it as the client sent it.
	Pass Action = "pass"
	// Adapt sends it in the form the cloud accepts: a beta under the
	// cloud's name for it (its fields then pass), or mid-conversation
	// system messages folded into the adjacent user turn (the beta then
	// goes, having nothing left to gate).
	Adapt Action = "adapt"
	// Drop leaves it out, with the other half of its pair.
	Drop Action = "drop"
)

// The body fields a table may name. Each is edited in place when present.
const (
	// FieldContextManagement is the top-level context_management member.
	FieldContextManagement = "context_management"
	// FieldEffort and FieldFormat are members of output_config; when every
	// member of output_config is dropped, output_config goes.
	FieldEffort = "output_config.effort"
	FieldFormat = "output_config.format"
	// FieldDeferLoading, FieldStrict and FieldEagerInputStreaming are
	// members of each tools[] entry.
	FieldDeferLoading        = "tools.defer_loading"
	FieldStrict              = "tools.strict"
	FieldEagerInputStreaming = "tools.eager_input_streaming"
	// FieldSystemMessages is every messages[] entry with role "system"
	// (mid-conversation system messages).
	FieldSystemMessages = "messages.system"
)

// KeyUnlistedBetas is the policy key of what happens to a beta no row lists
// (pass or drop).
const KeyUnlistedBetas = "unlisted_betas"

// Row is one line of a table: a beta value and the body fields it gates,
// which travel together, or a body field no beta gates on the cloud.
type Row struct {
	// Beta is the anthropic-beta value, or "" for a row of fields only.
	Beta string
	// Fields are the body fields (the Field constants) the beta gates.
	Fields []string
	// Action is what happens by default.
	Action Action
	// RenameTo is the cloud's name of the beta, which Adapt sends instead.
	RenameTo string
	// Source says why, citing the package documentation's sources.
	Source string
}

// adaptable reports whether the row has an adaptation.
func (r Row) adaptable() bool {
	return r.RenameTo != "" || slices.Contains(r.Fields, FieldSystemMessages)
}

// keys returns the policy keys that name the row: its beta and its fields.
func (r Row) keys() []string {
	var k []string
	if r.Beta != "" {
		k = append(k, r.Beta)
	}
	return append(k, r.Fields...)
}

// Table is what one provider type's cloud accepts. Its zero value passes
// everything.
type Table struct {
	// Provider is the provider type the table is for (bedrock, vertex).
	Provider string
	// Rows are the listed betas and fields, in the order the README lists
	// them.
	Rows []Row
	// Unlisted is what happens to a beta no row lists: Pass or Drop.
	Unlisted Action
}

// Bedrock returns the table of AWS Bedrock's InvokeModel API for Anthropic
// models, where betas travel in the body's anthropic_beta.
func Bedrock() Table {
	return Table{Provider: "bedrock", Unlisted: Drop, Rows: []Row{
		{Beta: "claude-code-20250219", Action: Drop, Source: "LL (listed only for bedrock-mantle); WF4"},
		{Beta: "oauth-2025-04-20", Action: Drop, Source: "LL; CC13770 (a claude.ai capability, no meaning on a cloud)"},
		{Beta: "context-1m-2025-08-07", Action: Pass, Source: "LL"},
		{Beta: "interleaved-thinking-2025-05-14", Action: Pass, Source: "LL #25835"},
		{Beta: "context-management-2025-06-27", Fields: []string{FieldContextManagement}, Action: Pass, Source: "LL #32658"},
		{Beta: "compact-2026-01-12", Action: Pass, Source: "LL #27534"},
		{Beta: "effort-2025-11-24", Fields: []string{FieldEffort}, Action: Pass, Source: "LL"},
		{Beta: "adaptive-thinking-2026-01-28", Action: Drop, Source: "LL (unlisted); WF2 (thinking:{type:adaptive} needs no beta)"},
		{Beta: "prompt-caching-scope-2026-01-05", Action: Drop, Source: "LL; PCS"},
		{Beta: "mid-conversation-system-2026-04-07", Fields: []string{FieldSystemMessages}, Action: Adapt, Source: "AWS-MCS; AWS-RR"},
		{Beta: "per-turn-control-2026-07-01", Action: Drop, Source: "LL"},
		{Beta: "advanced-tool-use-2025-11-20", Fields: []string{FieldDeferLoading}, Action: Adapt, RenameTo: "tool-search-tool-2025-10-19", Source: "TST; LL; WF4"},
		{Beta: "tool-search-tool-2025-10-19", Action: Pass, Source: "TST"},
		{Beta: "structured-outputs-2025-11-13", Action: Drop, Source: "LL; AWS-SO (generally available without it)"},
		{Fields: []string{FieldFormat}, Action: Pass, Source: "AWS-SO"},
		{Fields: []string{FieldStrict}, Action: Pass, Source: "AWS-SO"},
		{Beta: "fine-grained-tool-streaming-2025-05-14", Action: Pass, Source: "LL"},
		{Fields: []string{FieldEagerInputStreaming}, Action: Drop, Source: "CC33180"},
		{Beta: "token-efficient-tools-2025-02-19", Action: Drop, Source: "LL"},
		{Beta: "redact-thinking-2026-02-12", Action: Drop, Source: "LL (unlisted); S2A"},
		{Beta: "advisor-tool-2026-03-01", Action: Drop, Source: "LL; CC70563"},
		{Beta: "thinking-token-count-2026-05-13", Action: Drop, Source: "LL (unlisted); S2A"},
		{Beta: "web-search-2025-03-05", Action: Drop, Source: "LL"},
		{Beta: "computer-use-2025-01-24", Action: Pass, Source: "LL; AWS-RR"},
		{Beta: "computer-use-2025-11-24", Action: Pass, Source: "LL"},
		{Beta: "thinking-display-updates-2026-08-18", Action: Pass, Source: "LL"},
		{Beta: "thinking-binding-controls-2026-08-01", Action: Pass, Source: "LL"},
		{Beta: "mid-conversation-output-config-2026-07-01", Action: Pass, Source: "LL"},
		{Beta: "mid-conversation-tool-changes-2026-07-01", Action: Pass, Source: "LL"},
	}}
}

// Vertex returns the table of Google Vertex AI's rawPredict and
// streamRawPredict for Anthropic models, where betas travel in the
// anthropic-beta header.
func Vertex() Table {
	return Table{Provider: "vertex", Unlisted: Drop, Rows: []Row{
		{Beta: "claude-code-20250219", Action: Drop, Source: "LL (listed only for bedrock-mantle)"},
		{Beta: "oauth-2025-04-20", Action: Drop, Source: "CC13770"},
		{Beta: "context-1m-2025-08-07", Action: Pass, Source: "LL"},
		{Beta: "interleaved-thinking-2025-05-14", Action: Pass, Source: "LL"},
		{Beta: "context-management-2025-06-27", Fields: []string{FieldContextManagement}, Action: Pass, Source: "LL"},
		{Beta: "compact-2026-01-12", Action: Pass, Source: "LL"},
		{Beta: "effort-2025-11-24", Fields: []string{FieldEffort}, Action: Drop, Source: "CC34802; LL"},
		{Beta: "adaptive-thinking-2026-01-28", Action: Drop, Source: "CC34802; WF2"},
		{Beta: "prompt-caching-scope-2026-01-05", Action: Drop, Source: "PCS; S2A; LL"},
		{Beta: "mid-conversation-system-2026-04-07", Fields: []string{FieldSystemMessages}, Action: Adapt, Source: "LL (unlisted); AWS-MCS (the same model rule)"},
		{Beta: "per-turn-control-2026-07-01", Action: Pass, Source: "LL"},
		{Beta: "advanced-tool-use-2025-11-20", Fields: []string{FieldDeferLoading}, Action: Adapt, RenameTo: "tool-search-tool-2025-10-19", Source: "TST; LL"},
		{Beta: "tool-search-tool-2025-10-19", Action: Pass, Source: "TST"},
		{Beta: "structured-outputs-2025-11-13", Fields: []string{FieldFormat, FieldStrict}, Action: Drop, Source: "VAI; LL"},
		{Beta: "fine-grained-tool-streaming-2025-05-14", Fields: []string{FieldEagerInputStreaming}, Action: Drop, Source: "LL; CC33180 (the same field on Bedrock)"},
		{Beta: "token-efficient-tools-2025-02-19", Action: Drop, Source: "LL"},
		{Beta: "redact-thinking-2026-02-12", Action: Drop, Source: "S2A"},
		{Beta: "advisor-tool-2026-03-01", Action: Drop, Source: "S2A; CC70563; LL"},
		{Beta: "thinking-token-count-2026-05-13", Action: Drop, Source: "S2A"},
		{Beta: "web-search-2025-03-05", Action: Pass, Source: "LL"},
		{Beta: "computer-use-2025-01-24", Action: Pass, Source: "LL"},
		{Beta: "computer-use-2025-11-24", Action: Pass, Source: "LL"},
		{Beta: "thinking-display-updates-2026-08-18", Action: Pass, Source: "LL"},
		{Beta: "thinking-binding-controls-2026-08-01", Action: Pass, Source: "LL"},
	}}
}

// betaPattern is what a policy key naming a beta the table does not list
// must look like: a name and a date.
var betaPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*-20[0-9]{2}-[0-9]{2}-[0-9]{2}$`)

// Config is a table with a policy's overrides for one provider. Set it up
// with [New] and [Config.Set] while the policy is decoded; it is then
// immutable and safe for concurrent use.
type Config struct {
	table    Table
	actions  []Action // per row, the table's or the policy's
	setBy    []string // per row, the policy key that set it, if any
	unlisted Action
}

// New returns the configuration of table t with no overrides.
func New(t Table) *Config {
	c := &Config{table: t, unlisted: t.Unlisted}
	c.table.Rows = slices.Clone(t.Rows)
	for _, r := range t.Rows {
		c.actions = append(c.actions, r.Action)
		c.setBy = append(c.setBy, "")
	}
	if c.unlisted == "" {
		c.unlisted = Pass
	}
	return c
}

// Table returns the table with the overrides applied, for documentation
// and tests.
func (c *Config) Table() Table {
	t := c.table
	t.Rows = slices.Clone(t.Rows)
	for i := range t.Rows {
		t.Rows[i].Action = c.actions[i]
	}
	t.Unlisted = c.unlisted
	return t
}

// Set overrides the action of the row that key names (its beta or one of
// its fields) with value (pass, drop, or adapt where the row has an
// adaptation); a key naming a beta the table does not list adds a row for
// it (pass or drop), and unlisted_betas sets what happens to the others.
// The error says what is wrong with the key or the value; the policy
// decoder reports it at the provider's key.
func (c *Config) Set(key, value string) error {
	a := Action(value)
	if a != Pass && a != Drop && a != Adapt {
		return fmt.Errorf("must be pass, drop or adapt, not %q", value)
	}
	if key == KeyUnlistedBetas {
		if a == Adapt {
			return fmt.Errorf("must be pass or drop: an unlisted beta has no adaptation")
		}
		c.unlisted = a
		return nil
	}
	i := c.row(key)
	if i < 0 {
		if !betaPattern.MatchString(key) {
			return fmt.Errorf("%s lists no beta or field %q; fields: %s (a beta is a name and a date, such as effort-2025-11-24)",
				c.table.Provider, key, strings.Join(fieldNames(), ", "))
		}
		if a == Adapt {
			return fmt.Errorf("must be pass or drop: %s has no adaptation for %s", c.table.Provider, key)
		}
		c.table.Rows = append(c.table.Rows, Row{Beta: key, Action: a, Source: "policy"})
		c.actions = append(c.actions, a)
		c.setBy = append(c.setBy, key)
		return nil
	}
	r := c.table.Rows[i]
	if a == Adapt && !r.adaptable() {
		return fmt.Errorf("must be pass or drop: %s has no adaptation for %s", c.table.Provider, key)
	}
	if prev := c.setBy[i]; prev != "" && prev != key && c.actions[i] != a {
		return fmt.Errorf("%s and %s travel as a pair (a beta and the body field it gates): give them one action, not %s and %s",
			prev, key, c.actions[i], a)
	}
	c.actions[i], c.setBy[i] = a, key
	return nil
}

// row returns the index of the row key names, or -1.
func (c *Config) row(key string) int {
	for i, r := range c.table.Rows {
		if slices.Contains(r.keys(), key) {
			return i
		}
	}
	return -1
}

func fieldNames() []string {
	return []string{FieldContextManagement, FieldEffort, FieldFormat, FieldDeferLoading, FieldStrict,
		FieldEagerInputStreaming, FieldSystemMessages}
}
