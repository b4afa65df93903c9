//go:build !linux

package sink

// Sink is the XDP counting sink; it needs Linux.
type Sink struct{}

// Open returns an error wrapping ErrNotSupported: XDP needs Linux.
func Open(cfg Config) (*Sink, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return nil, ErrNotSupported
}

// Mode is empty: nothing is attached.
func (s *Sink) Mode() string { return "" }

// Counts returns ErrNotSupported.
func (s *Sink) Counts() (Counts, error) { return Counts{}, ErrNotSupported }

// RecentErrors returns nil.
func (s *Sink) RecentErrors() []string { return nil }

// ResetClients returns ErrNotSupported.
func (s *Sink) ResetClients() error { return ErrNotSupported }

// Close does nothing.
func (s *Sink) Close() error { return nil }
