package overlay

import (
	"testing"
	"time"
)

// TestTxWriteInline holds the transmit queue's choice between an inline
// write and the queue (tx.go) against synthetic times: a lone packet is
// written by its writer, a packet of a burst is queued, and after a batch
// of txBulkBatch packets every packet is queued for txBulkHold, then a
// lone one is written inline again.
func TestTxWriteInline(t *testing.T) {
	var q txQueue
	q.init()
	const us = int64(time.Microsecond)
	now := int64(time.Hour) // any time far from the zero value
	gap := int64(txBurstGap) + us

	if !q.writeInline(now) {
		t.Fatal("a lone packet is not written inline")
	}
	if q.writeInline(now + gap) {
		t.Fatal("a packet while the inline write runs is not queued")
	}
	q.handOff()
	if q.sending {
		t.Fatal("handOff kept the queue sending, with nothing queued")
	}

	// A burst: each packet within txBurstGap of the one before.
	now += 2 * gap
	q.writeInline(now) // its first packet comes alone
	q.handOff()
	for i := range txBulkBatch {
		now += us
		if q.writeInline(now) {
			t.Fatalf("packet %d of a burst written inline", i+1)
		}
		q.pkts = append(q.pkts, txPacket{n: 1})
	}
	q.sending = true // the sender goroutine
	if got := q.take(); len(got) != txBulkBatch {
		t.Fatalf("took %d packets, want %d", len(got), txBulkBatch)
	}
	q.sending = false
	end := now

	// Bulk: lone by the gap, queued all the same until txBulkHold.
	for _, at := range []int64{end + gap, end + int64(txBulkHold)/2, end + int64(txBulkHold) - us} {
		if q.writeInline(at) {
			t.Fatalf("a packet %v after a burst of %d written inline", time.Duration(at-end), txBulkBatch)
		}
	}
	if !q.writeInline(end + int64(txBulkHold) + gap) {
		t.Fatal("a lone packet after txBulkHold is not written inline")
	}
	q.handOff()

	// A smaller batch is no bulk transfer.
	now = end + 10*int64(txBulkHold)
	for range txBulkBatch - 1 {
		now += us
		q.pkts = append(q.pkts, txPacket{n: 1})
		q.last = now
	}
	q.sending = true
	q.take()
	q.sending = false
	if !q.writeInline(now + gap) {
		t.Fatalf("a batch of %d packets held back the next lone packet", txBulkBatch-1)
	}
	if q.inline != 4 || q.queued != 2*txBulkBatch-1 || q.batches != 2 {
		t.Fatalf("counted inline %d, queued %d, batches %d; want 4, %d, 2", q.inline, q.queued, q.batches, 2*txBulkBatch-1)
	}
}

// TestTxBulkStats: over real sockets, a burst of datagrams leaves mostly
// through the queue in batches, and a lone datagram well after it is
// written inline again; Stats.IO counts both.
func TestTxBulkStats(t *testing.T) {
	a, ca, cb, to := innerPair(t)
	msg := pattern(5, 1200)
	const burst = 256
	before := a.Stats().IO
	for range burst {
		if _, err := ca.WriteTo(msg, to); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 2048)
	cb.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range burst {
		if _, _, err := cb.ReadFromAddr(buf); err != nil {
			t.Fatalf("datagram %d of %d: %v", i+1, burst, err)
		}
	}
	mid := a.Stats().IO
	queued := mid.SentQueued - before.SentQueued
	// Under the race detector each write takes longer than txBurstGap:
	// no write is part of a burst there.
	if !raceEnabled && (queued < burst/2 || mid.Batches == before.Batches) {
		t.Fatalf("a burst of %d: %d queued in %d batches", burst, queued, mid.Batches-before.Batches)
	}
	time.Sleep(10 * txBulkHold)
	if _, err := ca.WriteTo(msg, to); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cb.ReadFromAddr(buf); err != nil {
		t.Fatal(err)
	}
	if after := a.Stats().IO; after.SentInline == mid.SentInline {
		t.Fatalf("a lone datagram %v after the burst was not written inline (inline %d)", 10*txBulkHold, after.SentInline)
	}
	t.Logf("burst of %d: %d queued in %d batches", burst, queued, mid.Batches-before.Batches)
}
