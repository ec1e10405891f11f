package extproc

import (
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-dev/tollgate/records"
)

// Each attempt writes the trail so far with its own entry; the policy role
// reads it back from its response attribute, in order, ignoring fields and
// lines it does not know.
func TestAttemptTrail(t *testing.T) {
	trailOf := func(md *structpb.Struct) string {
		return md.GetFields()[metadataNamespace].GetStructValue().GetFields()[metadataAttempts].GetStringValue()
	}
	first := trailOf(attemptMetadata("", records.Attempt{N: 1, Provider: "a", Model: "m-a"}))
	adapterMsg := &extprocv3.ProcessingRequest{MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		metadataNamespace: {Fields: map[string]*structpb.Value{metadataAttempts: structpb.NewStringValue(first)}}}}}
	second := trailOf(attemptMetadata(trailFrom(adapterMsg), records.Attempt{N: 2, Provider: "b", Model: "m-b"}))
	// A rewrite of attempt 2 (a later phase of the same attempt) replaces its entry.
	second = trailOf(attemptMetadata(second, records.Attempt{N: 2, Provider: "b", Model: "m-b2"}))
	if second != "1\ta\tm-a\n2\tb\tm-b2" {
		t.Fatalf("trail %q", second)
	}
	policyMsg := func(trail string) *extprocv3.ProcessingRequest {
		return &extprocv3.ProcessingRequest{Attributes: map[string]*structpb.Struct{attrNamespace: {Fields: map[string]*structpb.Value{
			AttemptsAttribute: structpb.NewStringValue(trail)}}}}
	}
	want := []records.Attempt{{N: 1, Provider: "a", Model: "m-a"}, {N: 2, Provider: "b", Model: "m-b2"}}
	if got := attemptsFrom(policyMsg(second)); !slices.Equal(got, want) {
		t.Errorf("attempts %+v; want %+v", got, want)
	}
	// A line out of order and junk.
	if got := attemptsFrom(policyMsg("2\tb\tm-b2\n1\ta\tm-a\nnot a line\n0\tz\tz")); !slices.Equal(got, want) {
		t.Errorf("attempts %+v; want %+v", got, want)
	}
	// Status and time to headers, from an attempt that got response headers;
	// an attempt without them has status 0.
	withStatus := trailOf(attemptMetadata(second, records.Attempt{N: 2, Provider: "b", Model: "m-b2", Status: 200, TimeToHeadersMS: 812.25}))
	if withStatus != "1\ta\tm-a\n2\tb\tm-b2\t200\t812.2" && withStatus != "1\ta\tm-a\n2\tb\tm-b2\t200\t812.3" {
		t.Fatalf("trail %q", withStatus)
	}
	want = []records.Attempt{{N: 1, Provider: "a", Model: "m-a"}, {N: 2, Provider: "b", Model: "m-b2", Status: 529, TimeToHeadersMS: 1200}}
	if got := attemptsFrom(policyMsg("1\ta\tm-a\n2\tb\tm-b2\t529\t1200\tfuture")); !slices.Equal(got, want) {
		t.Errorf("attempts %+v; want %+v", got, want)
	}
	if got := attemptsFrom(&extprocv3.ProcessingRequest{}); got != nil {
		t.Errorf("no attribute: %+v", got)
	}
}
