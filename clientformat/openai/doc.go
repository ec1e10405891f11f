// Package openai is the OpenAI Chat Completions client format: clients that
// speak OpenAI's API to the gateway (POST /v1/chat/completions), such as
// openai-go, the openai Python SDK and the many tools built on them. It
// implements extproc.ClientFormat (checked by extproc's tests): it names the
// endpoint, reads the few request fields the gateway acts on without
// decoding the body (model, stream, max_tokens or max_completion_tokens, and
// the media of the budget's input bound), reads usage from a
// chat.completion body or a chat.completion.chunk stream, and renders the
// gateway's refusals in OpenAI's error shape.
//
// A streamed request always asks for usage: Body sets
// stream_options.include_usage to true (inserting it when the client did not
// send it), so that the gateway meters every stream; the client then gets
// the final usage chunk, with empty choices, that OpenAI sends for it.
//
// OpenAI's prompt_tokens includes the prompt tokens read from the cache
// (prompt_tokens_details.cached_tokens): usage splits them, as Anthropic
// reports them, into input tokens and cache read tokens. Reasoning tokens
// (completion_tokens_details.reasoning_tokens) are part of completion_tokens
// and recorded as ReasoningTokens.
package openai
