// Package openaichat serves OpenAI Chat Completions clients from providers
// that speak the Anthropic Messages API, natively (type anthropic) or
// through adaptations of their own (Bedrock's InvokeModel, Vertex AI's
// rawPredict): a Chat Completions request becomes a Messages request
// ([Request]), and a Messages answer (Message JSON, event stream or error)
// becomes a chat.completion, chat.completion.chunk events or an OpenAI error
// ([Response]). [Via] composes the two with a provider's own translation
// from Anthropic clients, so that Bedrock and Vertex AI serve OpenAI clients
// with the same body edits, compatibility table, path, credentials and
// response translation as Anthropic clients (WIRE-FORMATS sections 3 and 6).
//
// It imports no provider type's package: each registers the translation
// for OpenAI clients in its own Type.Translator.
package openaichat
