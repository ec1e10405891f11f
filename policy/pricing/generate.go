package pricing

// The embedded catalog, catalog.json.gz, and its report, disagreements.txt,
// are generated from the price tables in ../shared, which the binary never
// reads. To regenerate them after updating the tables (and their versions
// below):
//
//	go generate ./policy/pricing
//
//go:generate go run ./internal/gen -litellm ../../../shared/data/pricing/litellm-model-prices.json -litellm-version 2026-03-03 -portkey ../../../shared/data/pricing/portkey -portkey-version f654307 -out catalog.json.gz -report disagreements.txt
