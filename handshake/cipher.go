package handshake

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"

	"hipnet.dev/handshake/wire"
)

// HIP_CIPHER suites of RFC 7401 §5.2.8 used for the ENCRYPTED parameter.

var errDecrypt = errors.New("handshake: ENCRYPTED parameter does not decrypt")

// cipherKeyLen is the natural key size of a HIP_CIPHER (RFC 7401 §6.5).
func cipherKeyLen(id uint16) (int, bool) {
	switch id {
	case wire.CipherNULL:
		return 0, true
	case wire.CipherAES128CBC:
		return 16, true
	case wire.CipherAES256CBC:
		return 32, true
	}
	return 0, false
}

// cipherIVLen is the IV length carried in ENCRYPTED (§5.2.18: inferred
// from the HIP_CIPHER).
func cipherIVLen(id uint16) int {
	if id == wire.CipherNULL {
		return 0
	}
	return aes.BlockSize
}

// encryptParams encrypts an 8-octet aligned block of TLVs for the
// ENCRYPTED parameter, adding PKCS#5 padding for AES-CBC (§5.2.18).
func encryptParams(id uint16, key []byte, rand io.Reader, plain []byte) (iv, ct []byte, err error) {
	if id == wire.CipherNULL {
		return nil, append([]byte(nil), plain...), nil
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, nil, err
	}
	iv = make([]byte, aes.BlockSize)
	if _, err := io.ReadFull(rand, iv); err != nil {
		return nil, nil, err
	}
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	ct = make([]byte, len(plain)+pad)
	copy(ct, plain)
	for i := len(plain); i < len(ct); i++ {
		ct[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, ct)
	return iv, ct, nil
}

// decryptParams reverses encryptParams and strips the PKCS#5 padding.
func decryptParams(id uint16, key, iv, ct []byte) ([]byte, error) {
	if id == wire.CipherNULL {
		return ct, nil
	}
	if len(iv) != aes.BlockSize || len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: bad length", errDecrypt)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(pt, ct)
	pad := int(pt[len(pt)-1])
	if pad == 0 || pad > aes.BlockSize {
		return nil, fmt.Errorf("%w: bad padding", errDecrypt)
	}
	for _, b := range pt[len(pt)-pad:] {
		if int(b) != pad {
			return nil, fmt.Errorf("%w: bad padding", errDecrypt)
		}
	}
	return pt[:len(pt)-pad], nil
}
