package store

import (
	"maps"
	"slices"
	"strings"
)

// snapshot is an immutable view of the whole store. Readers load the
// current one from an atomic pointer and never lock; a writer builds a new
// one from the old (copying only the maps it changes) after its bbolt
// transaction commits, and publishes it. Nothing in a published snapshot
// is ever modified, and readers get copies of slices.
type snapshot struct {
	algos     map[string]Algorithm // by canonical name and by alias
	algoList  []Algorithm          // canonical entries sorted by name
	pools     map[string]Pool      // by normalised Addr
	poolList  []Pool               // sorted by Addr
	users     map[string]User      // by Name
	userNames []string             // sorted
	dedupe    map[string]string    // keys.dedupe(primary) -> Name
}

// newSnapshot builds a snapshot from tables. It takes ownership of the maps.
func newSnapshot(algos []Algorithm, pools map[string]Pool, users map[string]User, dedupe map[string]string) *snapshot {
	s := &snapshot{algos: make(map[string]Algorithm, 2*len(algos))}
	s.setAlgorithms(algos)
	s.setPools(pools)
	s.setUsers(users, dedupe)
	return s
}

func (s *snapshot) setAlgorithms(algos []Algorithm) {
	s.algoList = slices.Clone(algos)
	slices.SortFunc(s.algoList, func(a, b Algorithm) int { return strings.Compare(a.Name, b.Name) })
	s.algos = make(map[string]Algorithm, 2*len(algos))
	for _, a := range s.algoList {
		s.algos[a.Name] = a
	}
	// Aliases never shadow a canonical name.
	for _, a := range s.algoList {
		for _, alias := range a.Aliases {
			if _, taken := s.algos[alias]; !taken {
				s.algos[alias] = a
			}
		}
	}
}

func (s *snapshot) setPools(pools map[string]Pool) {
	s.pools = pools
	s.poolList = slices.SortedFunc(maps.Values(pools), func(a, b Pool) int { return strings.Compare(a.Addr, b.Addr) })
}

func (s *snapshot) setUsers(users map[string]User, dedupe map[string]string) {
	s.users = users
	s.dedupe = dedupe
	s.userNames = slices.Sorted(maps.Keys(users))
}

// with returns a shallow copy of s, for a writer to change and publish.
func (s *snapshot) with() *snapshot {
	c := *s
	return &c
}

func (s *snapshot) algorithm(name string) (Algorithm, bool) {
	a, ok := s.algos[normalizeName(name)]
	return a, ok
}
