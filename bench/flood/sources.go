package flood

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// MaxSources caps the addresses one --sources value may expand to. A range
// is walked address by address, so the cap bounds that loop; 4096 source
// addresses give ~115 million ephemeral ports, far beyond any fd limit.
const MaxSources = 4096

// ErrSourcesTooMany is returned by ParseSources when a list or range expands
// to more than MaxSources addresses.
var ErrSourcesTooMany = errors.New("flood: too many source addresses")

// ParseSources parses a --sources value: a comma-separated list whose items
// are single addresses ("127.0.0.2") or inclusive ranges of one family
// ("127.0.0.2-127.0.0.9", "::1-::3"). Spaces around items are ignored, the
// order is kept and duplicates are dropped. An empty string returns nil
// (the kernel picks the source address).
//
// Example:
//
//	srcs, err := flood.ParseSources("127.0.0.2-127.0.0.4,127.0.0.9")
//	// [127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.9]
func ParseSources(s string) ([]netip.Addr, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []netip.Addr
	seen := make(map[netip.Addr]bool)
	add := func(a netip.Addr) error {
		if seen[a] {
			return nil
		}
		if len(out) >= MaxSources {
			return fmt.Errorf("%w: %q expands to more than %d", ErrSourcesTooMany, s, MaxSources)
		}
		seen[a] = true
		out = append(out, a)
		return nil
	}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("flood: sources %q: empty item", s)
		}
		lo, hi, isRange := strings.Cut(item, "-")
		from, err := parseAddr(lo)
		if err != nil {
			return nil, fmt.Errorf("flood: sources %q: %w", s, err)
		}
		if !isRange {
			if err := add(from); err != nil {
				return nil, err
			}
			continue
		}
		to, err := parseAddr(hi)
		if err != nil {
			return nil, fmt.Errorf("flood: sources %q: %w", s, err)
		}
		if from.Is4() != to.Is4() {
			return nil, fmt.Errorf("flood: sources %q: range %q mixes IPv4 and IPv6", s, item)
		}
		if to.Less(from) {
			return nil, fmt.Errorf("flood: sources %q: range %q ends before it starts", s, item)
		}
		// Bounded: add fails once MaxSources addresses are collected.
		for a := from; ; a = a.Next() {
			if err := add(a); err != nil {
				return nil, err
			}
			if a == to {
				break
			}
		}
	}
	return out, nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, err
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("address %q: zones are not supported", s)
	}
	return a.Unmap(), nil
}
