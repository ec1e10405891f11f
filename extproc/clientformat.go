package extproc

import (
	"errors"
	"strings"

	"github.com/tollgate-dev/tollgate/clientformat"
)

// ClientFormat is an API that clients speak to the gateway (Anthropic
// Messages; later OpenAI Chat and the Bedrock and Vertex entry formats): what
// the policy role needs to know of it, and nothing of the upstream, which is
// the provider's and the translation's business. Implementations live in
// their own packages under clientformat/ and are registered in
// Options.ClientFormats; extproc holds no knowledge of any one format.
//
// A format is shared by every stream at once, so it must be safe for
// concurrent use; the Request and StreamMeter it returns belong to one
// stream.
type ClientFormat interface {
	// Name names the format in logs ("anthropic").
	Name() string
	// Classify reports whether method and path (the query included) name an
	// endpoint of this format (ok), and which. A path the format owns but
	// refuses (a malformed id in it) returns ok and an error, whose text is
	// the message of the client's 404.
	Classify(method, path string) (ep clientformat.Endpoint, ok bool, err error)
	// Endpoints lists the endpoints clients of this format call, as
	// "METHOD /path", for the 404 of a request that no format serves.
	Endpoints() []string
	// ReadRequest reads the request body of endpoint ep at path (a format
	// may name the model in the path), with withMedia also what the
	// budget's input bound needs (Request.Media). An error is the client's
	// 400 ("request body: " and its text).
	ReadRequest(ep clientformat.Endpoint, path string, body []byte, withMedia bool) (clientformat.Request, error)
	// NewStreamMeter returns the meter of a response with this content type
	// when the format reads it as it streams, and nil when the response is
	// read whole, by ParseResponse.
	NewStreamMeter(contentType string) clientformat.StreamMeter
	// ParseResponse reads the usage, or the error type, of a whole response
	// body with the given status.
	ParseResponse(status int, body []byte) clientformat.ResponseUsage
	// RenderError renders a refusal in the format's error shape.
	RenderError(e clientformat.Error) clientformat.ErrorReply
}

// HeaderClassifier is implemented by a ClientFormat that shares a method
// and path with another format (GET /v1/models is both the Anthropic API's
// and OpenAI's) and claims such requests by their headers, read by header.
// classify asks every format that implements it first, in the order listed,
// and then each format's Classify. Its results mean what Classify's do.
type HeaderClassifier interface {
	ClassifyHeaders(method, path string, header func(name string) string) (ep clientformat.Endpoint, ok bool, err error)
}

// unknownEndpoint names, in records, the endpoint of a request that no
// format serves, or that its format refused at once.
const unknownEndpoint = "unknown"

// clientFormats is the formats a Server serves, in the order they are asked.
type clientFormats []ClientFormat

// checkFormats returns the error of a list without a format in it.
func checkFormats(fs []ClientFormat) error {
	if len(fs) == 0 {
		return errors.New("extproc: ClientFormats needs at least one client format")
	}
	for _, f := range fs {
		if f == nil {
			return errors.New("extproc: ClientFormats holds a nil format")
		}
	}
	return nil
}

// byDefault is the first format: it renders the refusals of requests that no
// format serves, and those of the adapter before it has read the decision.
func (fs clientFormats) byDefault() ClientFormat { return fs[0] }

// named returns the format called name, or the default format when none is
// (an empty name, or a format this replica does not serve).
func (fs clientFormats) named(name string) ClientFormat {
	for _, f := range fs {
		if f.Name() == name {
			return f
		}
	}
	return fs.byDefault()
}

// classify asks each format in turn for the endpoint of method and path
// (with the request headers header reads, nil for none: HeaderClassifier
// formats first); the first that owns it decides. A request that none owns
// is a 404 in the default format's shape, naming the endpoints of every
// format.
func (fs clientFormats) classify(method, path string, header func(name string) string) (ClientFormat, clientformat.Endpoint, *ClientError) {
	found := func(f ClientFormat, ep clientformat.Endpoint, err error) (ClientFormat, clientformat.Endpoint, *ClientError) {
		if err != nil {
			return f, clientformat.Endpoint{Name: unknownEndpoint}, notFound("%s", err.Error())
		}
		return f, ep, nil
	}
	if header != nil {
		for _, f := range fs {
			if hc, ok := f.(HeaderClassifier); ok {
				if ep, ok, err := hc.ClassifyHeaders(method, path, header); ok {
					return found(f, ep, err)
				}
			}
		}
	}
	for _, f := range fs {
		if ep, ok, err := f.Classify(method, path); ok {
			return found(f, ep, err)
		}
	}
	var serves []string
	for _, f := range fs {
		serves = append(serves, f.Endpoints()...)
	}
	return fs.byDefault(), clientformat.Endpoint{Name: unknownEndpoint},
		notFound("%s %s is not an endpoint of this gateway; it serves %s", method, stripQuery(path), joinAnd(serves))
}

// stripQuery returns path without its query.
func stripQuery(path string) string {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		return path[:i]
	}
	return path
}

// joinAnd joins items as "a, b and c".
func joinAnd(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}
