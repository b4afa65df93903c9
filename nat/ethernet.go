package nat

// SwapEthernet exchanges the destination and source MAC addresses of frame
// (to send a frame back out of the port it came in on). Frames shorter than
// 12 bytes are left alone.
func SwapEthernet(frame []byte) {
	if len(frame) < EthTypeOff {
		return
	}
	var t [6]byte
	copy(t[:], frame[EthDstOff:EthDstOff+6])
	copy(frame[EthDstOff:EthDstOff+6], frame[EthSrcOff:EthSrcOff+6])
	copy(frame[EthSrcOff:EthSrcOff+6], t[:])
}

// SetEthernet sets the destination and source MAC addresses of frame (wire
// order: destination first), e.g. to the next hop's and the egress
// interface's. Frames shorter than 12 bytes are left alone.
func SetEthernet(frame []byte, dst, src [6]byte) {
	if len(frame) < EthTypeOff {
		return
	}
	copy(frame[EthDstOff:EthDstOff+6], dst[:])
	copy(frame[EthSrcOff:EthSrcOff+6], src[:])
}
