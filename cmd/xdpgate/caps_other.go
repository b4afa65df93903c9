//go:build !linux

package main

// missingCaps has nothing to check outside Linux: the dataplane itself
// reports ErrNotSupported.
func missingCaps() ([]string, error) { return nil, nil }
