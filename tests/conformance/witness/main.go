// Command notar-witness-check verifies a checkpoint that a notar witness cosigned, the way a third
// party would: with Go's golang.org/x/mod/sumdb/note and nothing of notar's.
//
//	notar-witness-check -log <log vkey> -witness <witness vkey> <note file>
//
// The log's Ed25519 signature (type 0x01) is checked by x/mod's own verifier. x/mod does not know
// C2SP tlog-cosignature/v1 (type 0x04): its NewVerifier refuses the witness key, which is reported
// on an "info" line. So the cosignature is checked by a note.Verifier written here from the spec's
// byte layout (u64 big-endian timestamp || Ed25519 over "cosignature/v1\ntime <t>\n" || body),
// which note.Open calls like any other. One line per check (ok / FAIL), exit status 1 on failure.
//
// Build with Debian's golang-golang-x-mod-dev: GO111MODULE=off GOPATH=/usr/share/gocode go build.
package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

const sigCosignatureV1 = 0x04

// cosignatureVerifier checks tlog-cosignature/v1 signatures of one witness key.
type cosignatureVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
	time uint64 // the timestamp of the last signature that verified
}

func (v *cosignatureVerifier) Name() string    { return v.name }
func (v *cosignatureVerifier) KeyHash() uint32 { return v.hash }

func (v *cosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig[:8])
	if t >= 1<<63 {
		return false
	}
	signed := append([]byte("cosignature/v1\ntime "+strconv.FormatUint(t, 10)+"\n"), msg...)
	if !ed25519.Verify(v.key, signed, sig[8:]) {
		return false
	}
	v.time = t
	return true
}

// newCosignatureVerifier parses name+hexhash+base64(0x04||key) and checks the key hash the spec
// defines: SHA-256(name || "\n" || 0x04 || key)[:4].
func newCosignatureVerifier(vkey string) (*cosignatureVerifier, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, errors.New("not name+hash+key")
	}
	hash, err := strconv.ParseUint(parts[1], 16, 32)
	if err != nil || len(parts[1]) != 8 {
		return nil, errors.New("the key hash is not 8 hex digits")
	}
	material, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(material) != 1+ed25519.PublicKeySize || material[0] != sigCosignatureV1 {
		return nil, errors.New("not a type 0x04 Ed25519 key")
	}
	h := sha256.Sum256(append([]byte(parts[0]+"\n"), material...))
	if binary.BigEndian.Uint32(h[:4]) != uint32(hash) {
		return nil, errors.New("the key hash does not match the key")
	}
	return &cosignatureVerifier{name: parts[0], hash: uint32(hash), key: material[1:]}, nil
}

func main() {
	logKey := flag.String("log", "", "the log's verifier key (type 0x01)")
	witnessKey := flag.String("witness", "", "the witness's verifier key (type 0x04)")
	flag.Parse()
	if *logKey == "" || *witnessKey == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: notar-witness-check -log VKEY -witness VKEY NOTEFILE")
		os.Exit(2)
	}
	msg, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	failed := false
	report := func(name string, err error, detail string) {
		if err != nil {
			failed = true
			fmt.Printf("FAIL %s: %v\n", name, err)
		} else {
			fmt.Printf("ok   %s: %s\n", name, detail)
		}
	}
	if _, err := note.NewVerifier(*witnessKey); err != nil {
		fmt.Printf("info x/mod NewVerifier(witness key): %v\n", err)
	} else {
		fmt.Printf("info x/mod NewVerifier(witness key): accepted\n")
	}
	logVerifier, err := note.NewVerifier(*logKey)
	report("log key", err, "x/mod reads it")
	witness, err := newCosignatureVerifier(*witnessKey)
	report("witness key", err, "type 0x04, key hash as tlog-cosignature defines it")
	if failed {
		os.Exit(1)
	}
	n, err := note.Open(msg, note.VerifierList(logVerifier, witness))
	if err == nil {
		names := map[string]bool{}
		for _, s := range n.Sigs {
			names[s.Name] = true
		}
		if !names[logVerifier.Name()] || !names[witness.Name()] {
			err = fmt.Errorf("verified signatures %v lack the log's or the witness's", n.Sigs)
		}
	}
	report("note.Open", err, "the log's signature and the witness's cosignature verify")
	if err == nil {
		lines := strings.SplitN(n.Text, "\n", 3)
		report("witness cosignature", nil, fmt.Sprintf("by %s over %s size %s at time %d",
			witness.Name(), lines[0], lines[1], witness.time))
	}
	if failed {
		os.Exit(1)
	}
}
