// Package testkey hands tests host identities without paying for a key
// generation per test: the n-th ECDSA P-256 key of the process, generated
// once and shared by every test of the binary.
//
// What it must not do: be imported outside _test.go files (its keys are
// neither secret nor stable across runs), or hand out keys for anything
// but tests.
package testkey
