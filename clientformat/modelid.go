package clientformat

import "strings"

// ModelsPath is the path of the models endpoint, which the Anthropic and
// OpenAI APIs share: GET ModelsPath lists models, GET ModelsPath/{id}
// describes one.
const ModelsPath = "/v1/models"

// maxModelIDLen bounds the model id of a GET /v1/models/{id} path, as the
// gateway bounds the model a request body names.
const maxModelIDLen = 256

// IsModelsPath reports whether path (query excluded) is GET /v1/models or
// /v1/models/{id}, the latter with any id, well-formed or not (see
// ValidModelID).
func IsModelsPath(path string) bool {
	return path == ModelsPath || strings.HasPrefix(path, ModelsPath+"/")
}

// ValidModelID reports whether id, the rest of a GET /v1/models/{id} path, is
// one well-formed model id segment. The models endpoint is exempt from budgets
// and forwarded with the provider key, so anything that could name another
// endpoint at an edge that decodes or normalises paths is refused: "%"
// (encoded slashes, backslashes and dots), "/" (further or empty segments),
// a backslash, and dot-segments (an id starts with a letter or digit).
func ValidModelID(id string) bool {
	if id == "" || len(id) > maxModelIDLen || !isAlnum(id[0]) {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !isAlnum(c) && c != '-' && c != '.' && c != '_' && c != ':' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// ModelPathError refuses a GET /v1/models/{id} path whose id is not one
// well-formed segment (ValidModelID); its text is the client's 404 message.
type ModelPathError struct{ Path string }

func (e *ModelPathError) Error() string {
	return "GET " + e.Path + ": a model id is one path segment of letters, digits, '-', '.', '_' and ':', starting with a letter or digit; percent-escapes, dot-segments and further segments are refused"
}
