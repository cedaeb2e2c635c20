// Package ratelimit holds the token buckets that bound what a packet
// from the network, or a peer, may make a node do: one Bucket, and a
// bounded Table of them by key. It holds no clock and starts no
// goroutine: every call takes the time, and the caller serializes calls
// on one Bucket or Table (they are not safe for concurrent use).
package ratelimit
