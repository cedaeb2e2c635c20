module hipnet.dev

go 1.26.0

require (
	github.com/hashicorp/go-memdb v1.3.5
	github.com/quic-go/quic-go v0.65.0
	golang.org/x/net v0.62.0
	golang.org/x/sys v0.49.0
)

require (
	github.com/hashicorp/go-immutable-radix v1.3.1 // indirect
	github.com/hashicorp/golang-lru v0.5.4 // indirect
	golang.org/x/crypto v0.58.0 // indirect
)
