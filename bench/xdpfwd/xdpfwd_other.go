//go:build !linux

package xdpfwd

// Forwarder is the attached XDP forwarder; it needs Linux.
type Forwarder struct{}

// Attach returns ErrNotSupported: XDP needs Linux.
func Attach(ifnames []string) (*Forwarder, error) { return nil, ErrNotSupported }

// Stats returns ErrNotSupported.
func (f *Forwarder) Stats() (Stats, error) { return Stats{}, ErrNotSupported }

// Close does nothing.
func (f *Forwarder) Close() error { return nil }
