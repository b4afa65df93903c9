package dataplane

import "errors"

// Sentinel errors returned (wrapped) by this package.
var (
	// ErrNotSupported is returned on operating systems without AF_XDP.
	ErrNotSupported = errors.New("dataplane: AF_XDP is not supported on this OS")
	// ErrBadConfig is returned for an invalid Config or ClassifierConfig.
	ErrBadConfig = errors.New("invalid dataplane config")
	// ErrMTUTooLarge is returned when an interface's MTU does not fit the
	// UMEM frame size.
	ErrMTUTooLarge = errors.New("MTU does not fit the UMEM frame size")
	// ErrAttach is returned when the classifier attaches in no mode allowed.
	ErrAttach = errors.New("cannot attach XDP program")
	// ErrTooManyRules is returned by Classifier.Update when a rule set does
	// not fit its map.
	ErrTooManyRules = errors.New("rules exceed classifier map capacity")
	// ErrClosed is returned when a closed Dataplane is used.
	ErrClosed = errors.New("dataplane closed")
	// ErrRunning is returned when Run is called twice.
	ErrRunning = errors.New("dataplane already running")
	// ErrSocketBroken is returned by Run when a socket reports an error
	// (e.g. its interface was deleted).
	ErrSocketBroken = errors.New("AF_XDP socket error")
	// ErrTxFrameLength is returned by TxSocket.Submit for a length outside
	// [1, FrameSize()].
	ErrTxFrameLength = errors.New("dataplane: tx frame length out of range")
	// ErrTxSocketClosed is returned by TxSocket.Submit after Close.
	ErrTxSocketClosed = errors.New("dataplane: tx socket closed")
)
