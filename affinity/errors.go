package affinity

import "errors"

// Sentinel errors returned (wrapped) by this package.
var (
	// ErrInvalidTimeout is wrapped by ValidateTimeoutSeconds. Its text is the
	// API server's (validateAffinityTimeout); note that 86400 itself is
	// accepted despite "less than".
	ErrInvalidTimeout = errors.New("must be greater than 0 and less than 86400")
	// ErrCapacity reports a Config.Capacity outside 1..MaxCapacity.
	ErrCapacity = errors.New("capacity out of range")
	// ErrShards reports a Config.Shards that is not a power of two in
	// 1..MaxShards.
	ErrShards = errors.New("shard count must be a power of two")
	// ErrProbeWindow reports a Config.ProbeWindow outside 1..MaxProbeWindow.
	ErrProbeWindow = errors.New("probe window out of range")
	// ErrSharedMemory reports memory or a seed NewShared cannot use.
	ErrSharedMemory = errors.New("unusable shared memory")
)
