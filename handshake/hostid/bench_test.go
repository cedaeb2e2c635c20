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
