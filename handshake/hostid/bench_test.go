package hostid

import "testing"

func BenchmarkSign(b *testing.B) {
	msg := make([]byte, 600) // about an I2 up to HIP_SIGNATURE
	for _, kt := range testKeyTypes {
		k := testKey(b, kt)
		b.Run(kt.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := k.Sign(nil, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	msg := make([]byte, 600)
	for _, kt := range testKeyTypes {
		k := testKey(b, kt)
		sig, alg, err := k.Sign(nil, msg)
		if err != nil {
			b.Fatal(err)
		}
		pub := k.Public()
		b.Run(kt.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := pub.Verify(msg, sig, alg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseHostIdentity covers what a responder does with each I2:
// decode the HI, check the point or modulus, derive the HIT.
func BenchmarkParseHostIdentity(b *testing.B) {
	for _, kt := range testKeyTypes {
		pub := testKey(b, kt).Public()
		hi, alg := pub.HI(), pub.Algorithm()
		b.Run(kt.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseHostIdentity(alg, hi); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyPeer is Verify with a key parsed from a HOST_ID, as an
// association holds its peer's: what every signed UPDATE, CLOSE and
// NOTIFY costs.
func BenchmarkVerifyPeer(b *testing.B) {
	msg := make([]byte, 600)
	for _, kt := range testKeyTypes {
		k := testKey(b, kt)
		sig, alg, err := k.Sign(nil, msg)
		if err != nil {
			b.Fatal(err)
		}
		pub, err := ParseHostIdentity(alg, k.Public().HI())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(kt.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := pub.Verify(msg, sig, alg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEqual compares a peer's key with another copy of it, as a
// caller checks that a peer kept its identity.
func BenchmarkEqual(b *testing.B) {
	for _, kt := range testKeyTypes {
		pub := testKey(b, kt).Public()
		other, err := ParseHostIdentity(pub.Algorithm(), pub.HI())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(kt.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !pub.Equal(other) {
					b.Fatal("not Equal")
				}
			}
		})
	}
}

// BenchmarkAccessors covers what callers ask a peer's key for on their
// paths: its HIT, suite and signature length.
func BenchmarkAccessors(b *testing.B) {
	for _, kt := range testKeyTypes {
		pub := testKey(b, kt).Public()
		peer, err := ParseHostIdentity(pub.Algorithm(), pub.HI())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(kt.String(), func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				h := peer.HIT()
				n += int(h[15]) + int(peer.Suite()) + peer.SignatureLen()
			}
			if n == 0 {
				b.Fatal("nothing")
			}
		})
	}
}

// BenchmarkCryptoPublicKey is the crypto.PublicKey of a peer's key, which
// the stream layer compares with its TLS certificate's once a connection.
func BenchmarkCryptoPublicKey(b *testing.B) {
	for _, kt := range testKeyTypes {
		pub := testKey(b, kt).Public()
		peer, err := ParseHostIdentity(pub.Algorithm(), pub.HI())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(kt.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if peer.CryptoPublicKey() == nil {
					b.Fatal("nil")
				}
			}
		})
	}
}
