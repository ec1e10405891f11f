package vertex

import "github.com/tollgate-dev/tollgate/provider/internal/cloudcompat"

// AdaptRequest applies Vertex AI's compatibility table (package cloudcompat,
// with the policy's compat overrides) to an Anthropic Messages request:
// body and betas, the anthropic-beta header's value, come back as Vertex AI
// accepts them, the betas comma separated for the adapter to send in the
// anthropic-beta header, where Vertex AI reads them. Every byte of body the
// table does not adapt is kept. note is called for each beta or field not
// passed as it was: key is the table's key, action "adapt" or "drop",
// detail a short description with no body content. The adapter calls it
// before the translation, at the request body of every attempt to a
// provider of this type.
func (s *Settings) AdaptRequest(body []byte, betas string, note func(key, action, detail string)) ([]byte, string, error) {
	c := s.compat
	if c == nil { // settings not made by NewSettings: the table as it is
		c = cloudcompat.New(cloudcompat.Vertex())
	}
	return c.AdaptRequest(body, betas, note)
}

// BetasInHeader reports that Vertex AI reads betas in the anthropic-beta
// header: the adapter sends AdaptRequest's betas there, for this attempt
// only.
func (s *Settings) BetasInHeader() bool { return true }
