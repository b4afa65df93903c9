package maglev

import "errors"

// Sentinel errors returned (wrapped) by Build.
var (
	// ErrNoBackends reports a build without any backend of non-zero
	// weight.
	ErrNoBackends = errors.New("no backend with non-zero weight")
	// ErrTooManyBackends reports more backends than MaxBackends or than
	// table slots.
	ErrTooManyBackends = errors.New("too many backends")
	// ErrDuplicateBackend reports two backends with the same ID.
	ErrDuplicateBackend = errors.New("duplicate backend id")
	// ErrSize reports a table size that is not a prime in 2..MaxSize.
	ErrSize = errors.New("maglev table size must be a prime")
)
