package store

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
)

// seedJSON is the algorithm and pool table written into an empty
// database. It is one readable file so an operator or reviewer can see
// (and a pull request can change) exactly what a new install starts with;
// each algorithm carries a note with the source of its divider.
//
//go:embed seed.json
var seedJSON []byte

// seedData is the layout of seed.json.
type seedData struct {
	About      string          `json:"about"`
	Algorithms []seedAlgorithm `json:"algorithms"`
	Pools      []Pool          `json:"pools"`
}

// seedAlgorithm is an Algorithm with the note explaining its divider.
type seedAlgorithm struct {
	Algorithm
	Note string `json:"note"`
}

// Seed returns the algorithms and pools a new database starts with, as
// embedded in the binary (store/seed.json). It is what Open writes into
// an empty database.
func Seed() ([]Algorithm, []Pool, error) {
	dec := json.NewDecoder(bytes.NewReader(seedJSON))
	dec.DisallowUnknownFields() // a typo in the seed must fail the tests, not vanish
	var d seedData
	if err := dec.Decode(&d); err != nil {
		return nil, nil, fmt.Errorf("store: seed.json: %w", err)
	}
	algos := make([]Algorithm, 0, len(d.Algorithms))
	for _, a := range d.Algorithms {
		if a.Name == "" || a.Name != normalizeName(a.Name) || a.Divider <= 0 || len(a.Dialects) == 0 {
			return nil, nil, fmt.Errorf("store: seed.json: algorithm %q: want a lower-case name, a positive divider and dialects", a.Name)
		}
		algos = append(algos, a.Algorithm)
	}
	s := newSnapshot(algos, map[string]Pool{}, map[string]User{}, map[string]string{})
	pools := make([]Pool, 0, len(d.Pools))
	seen := make(map[string]bool, len(d.Pools))
	for _, p := range d.Pools {
		p, err := checkPool(s, p)
		if err != nil {
			return nil, nil, fmt.Errorf("store: seed.json: %w", err)
		}
		if seen[p.Addr] {
			return nil, nil, fmt.Errorf("store: seed.json: pool %s listed twice", p.Addr)
		}
		seen[p.Addr] = true
		pools = append(pools, p)
	}
	return algos, pools, nil
}
