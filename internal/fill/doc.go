// Package fill sets every field of a value to a value of its own, for
// tests that check a conversion between two mirror types copies every
// field (hipnet's Status from overlay's, and the relay's): numbers count
// up in field order, strings and booleans follow, slices get two elements
// and maps one. Two values of mirror types filled from the same start are
// then equal field by field.
//
// # What it must not do
//
// Be used outside tests: it panics on a kind it does not know, and nothing
// outside tests imports it.
package fill
