package hostid

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// pemType is the block type MarshalPEM writes: PKCS#8 (RFC 5208, RFC 7468).
const pemType = "PRIVATE KEY"

// maxKeyFile bounds how much LoadFile reads; real key files are a few KiB.
const maxKeyFile = 1 << 16

// MarshalPEM encodes k as an unencrypted PKCS#8 "PRIVATE KEY" PEM block.
// A key held by an external signer (FromSigner) cannot be exported:
// MarshalPEM returns ErrNotExportable for it.
func MarshalPEM(k *PrivateKey) ([]byte, error) {
	if k.external() {
		return nil, fmt.Errorf("%w: the key is held by %T", ErrNotExportable, k.signer)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.signer)
	if err != nil {
		return nil, fmt.Errorf("hostid: encoding private key: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})
	clear(der)
	return out, nil
}

// ParsePEM decodes the first private key in b: a PKCS#8 "PRIVATE KEY"
// block, or the "EC PRIVATE KEY" (SEC 1) and "RSA PRIVATE KEY" (PKCS#1)
// blocks other tools write. Other blocks (such as "EC PARAMETERS") are
// skipped. Encrypted keys are refused. The key must be one NewPrivateKey
// accepts.
func ParsePEM(b []byte) (*PrivateKey, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, ErrInvalidPEM
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case pemType:
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("%w: encrypted private keys are not supported", ErrInvalidPEM)
		default:
			continue
		}
		if strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, fmt.Errorf("%w: encrypted private keys are not supported", ErrInvalidPEM)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s block: %v", ErrInvalidPEM, block.Type, err)
		}
		return NewPrivateKey(key)
	}
}

// LoadFile reads a private key file written by SaveFile (or any PEM
// ParsePEM accepts). On Unix it refuses, with a *PermissionError, a file
// that group or others may access (mode & 0077 != 0), as OpenSSH does.
func LoadFile(path string) (*PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("hostid: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("hostid: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("hostid: private key file %s is not a regular file", path)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, &PermissionError{Path: path, Mode: fi.Mode()}
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("hostid: reading %s: %w", path, err)
	}
	defer clear(b)
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("hostid: private key file %s is larger than %d bytes", path, maxKeyFile)
	}
	k, err := ParsePEM(b)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return k, nil
}

// SaveFile writes k to path as PKCS#8 PEM with mode 0600, atomically: the
// key goes to a temporary file in the same directory, which is synced and
// renamed over path. An existing file at path is replaced. A key from
// FromSigner gives ErrNotExportable and leaves path alone.
func SaveFile(path string, k *PrivateKey) error {
	tmp, err := writeTemp(path, k)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("hostid: %w", err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// writeTemp writes k to a new mode-0600 file beside path and returns its
// name.
func writeTemp(path string, k *PrivateKey) (string, error) {
	b, err := MarshalPEM(k)
	if err != nil {
		return "", err
	}
	defer clear(b)
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("hostid: %w", err)
	}
	name := f.Name()
	err = f.Chmod(0o600) // CreateTemp already uses 0600; make it explicit
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("hostid: writing %s: %w", name, err)
	}
	return name, nil
}

// syncDir makes a rename durable where the platform allows it; failures
// are ignored (some systems cannot sync a directory).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// LoadOrCreate loads the key at path or, if there is no file there,
// generates one of type t, stores it with mode 0600 and reports created.
// Missing parent directories are created with mode 0700. A key file that
// appears concurrently (another process won the race) is loaded rather than
// overwritten, so every caller ends up with the key on disk.
func LoadOrCreate(path string, t KeyType, rand io.Reader) (k *PrivateKey, created bool, err error) {
	k, err = LoadFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	k, err = Generate(t, rand)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("hostid: %w", err)
	}
	tmp, err := writeTemp(path, k)
	if err != nil {
		return nil, false, err
	}
	defer os.Remove(tmp)
	// Link, unlike Rename, fails if path exists: no clobbering a key
	// another process has just created.
	switch err := os.Link(tmp, path); {
	case err == nil:
		syncDir(filepath.Dir(path))
		return k, true, nil
	case errors.Is(err, fs.ErrExist):
		k, err := LoadFile(path)
		return k, false, err
	}
	// No hard links on this file system: fall back to a rename, checking
	// once more that nobody created the file meanwhile.
	if _, err := os.Lstat(path); err == nil {
		k, err := LoadFile(path)
		return k, false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, false, fmt.Errorf("hostid: %w", err)
	}
	syncDir(filepath.Dir(path))
	return k, true, nil
}
