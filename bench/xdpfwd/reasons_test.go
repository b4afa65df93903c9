package xdpfwd

import "testing"

func TestStats(t *testing.T) {
	var s Stats
	if got, want := s.String(), "nothing counted"; got != want {
		t.Errorf("Stats{}.String() = %q, want %q", got, want)
	}
	s[Forwarded], s[NotIP], s[NoNeigh], s[RedirectFailed] = 1200, 2, 3, 4
	if got, want := s.String(), "forwarded 1200, not_ip 2, no_neigh 3, redirect_failed 4"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := s.Passed(); got != 5 {
		t.Errorf("Passed() = %d, want 5", got)
	}
	if got, want := Reason(99).String(), "reason(99)"; got != want {
		t.Errorf("Reason(99).String() = %q, want %q", got, want)
	}
	for r := range numReasons {
		if r.String() == "" {
			t.Errorf("reason %d has no name", uint32(r))
		}
	}
}
