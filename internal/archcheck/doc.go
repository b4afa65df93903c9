// Package archcheck holds only a test: it keeps the package table of
// ARCHITECTURE.md equal to what `go list` reports, so the document the next
// engineer reads first stays true to the code.
package archcheck
