// Command notar-conformance checks a running notar server the way a third party would: with Go's
// golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog (the code that checks Go's own
// checksum database), not with anything of notar's. It reads only public routes and the receipt
// files it is given, and prints one line per check:
//
//	ok   <check>: <detail>
//	FAIL <check>: <detail>
//
// then a summary line; the exit status is 1 when any check failed, 2 on a usage error.
//
// What it checks, against the format described in the repository's docs/:
//   - the checkpoint (GET <log>/checkpoint) opens with note.Open under the log verifier key
//     from GET /v1/keys, whose name is the checkpoint's origin; the clock's
//     tlog-cosignature/v1 (signature type 0x04, which x/mod does not know) with crypto/ed25519;
//   - tlog.TreeHash over the C2SP tiles equals the checkpoint's root, and tlog.TileHashReader
//     authenticates every level-0 tile against it;
//   - every entry bundle's entries hash (tlog.RecordHash) to the authenticated leaf hashes, and
//     every entry is a format v2 commitment (33 bytes, type 0x02) revealing no notarized digest;
//   - each receipt: format v2, its entry recomputed from digest, salt and subject (the tenant
//     given with -subject), its checkpoint
//     signed by the log key, its inclusion proof (tlog.CheckRecord), its leaf in the published
//     log, and GET /v1/proofs/inclusion equal to tlog.ProveRecord over the tiles;
//   - GET /v1/proofs/consistency between each receipt's tree and the published one (tlog.CheckTree).
//
// Build with Debian's golang-golang-x-mod-dev: GO111MODULE=off GOPATH=/usr/share/gocode go build.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const (
	tileHeight     = 8
	tileWidth      = 1 << tileHeight
	sigCosignature = 0x04
	receiptV2      = "notar.receipt.v2"
	entryV2Type    = 0x02
	entryV2Domain  = "notar.entry.v2"
	saltSize       = 16
)

var client = &http.Client{Timeout: 30 * time.Second}

// report collects the outcome of every check.
type report struct{ failed, total int }

func (r *report) check(name string, err error, okDetail string) bool {
	r.total++
	if err != nil {
		r.failed++
		fmt.Printf("FAIL %s: %v\n", name, err)
		return false
	}
	fmt.Printf("ok   %s: %s\n", name, okDetail)
	return true
}

func get(url string) ([]byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}

// keys is GET /v1/keys: {"log": vkey, "clock": vkey, ...}, or {"logs": [{"origin", "log", "clock"}]}.
type keys struct {
	Log   string `json:"log"`
	Clock string `json:"clock"`
	Logs  []struct {
		Origin string `json:"origin"`
		Log    string `json:"log"`
		Clock  string `json:"clock"`
	} `json:"logs"`
}

// logKeys returns the log and clock verifier keys named after origin.
func (k keys) forOrigin(origin string) (string, string, error) {
	candidates := [][2]string{{k.Log, k.Clock}}
	for _, l := range k.Logs {
		candidates = append(candidates, [2]string{l.Log, l.Clock})
	}
	for _, c := range candidates {
		if c[0] != "" && strings.HasPrefix(c[0], origin+"+") {
			return c[0], c[1], nil
		}
	}
	return "", "", fmt.Errorf("GET /v1/keys lists no log key named %q (the checkpoint's origin)", origin)
}

// checkpoint is a parsed C2SP tlog-checkpoint body. tlog.ParseTree wants the go.sum header line,
// so the body is parsed here: origin, decimal size, base64 root, optional extension lines.
type checkpoint struct {
	origin string
	tree   tlog.Tree
	body   string
}

func parseCheckpoint(text string) (checkpoint, error) {
	var cp checkpoint
	if !strings.HasSuffix(text, "\n") {
		return cp, errors.New("checkpoint body does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 || lines[0] == "" {
		return cp, errors.New("checkpoint body has no origin, size and root lines")
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return cp, fmt.Errorf("checkpoint size %q is not a decimal", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return cp, fmt.Errorf("checkpoint root %q is not 32 bytes of base64", lines[2])
	}
	cp.origin, cp.body = lines[0], text
	cp.tree.N = n
	copy(cp.tree.Hash[:], root)
	return cp, nil
}

// openCheckpoint opens a signed checkpoint under the log key and checks that the key's name is
// the checkpoint's origin.
func openCheckpoint(signed []byte, logKey note.Verifier) (checkpoint, *note.Note, error) {
	n, err := note.Open(signed, note.VerifierList(logKey))
	if err != nil {
		return checkpoint{}, nil, fmt.Errorf("note.Open under %s: %v", logKey.Name(), err)
	}
	cp, err := parseCheckpoint(n.Text)
	if err != nil {
		return cp, n, err
	}
	if cp.origin != logKey.Name() {
		return cp, n, fmt.Errorf("origin %q is not the log key's name %q", cp.origin, logKey.Name())
	}
	return cp, n, nil
}

// checkCosignature verifies a C2SP tlog-cosignature/v1 (type 0x04) by the clock key: signature
// bytes key ID(4) || u64be(time) || Ed25519 over "cosignature/v1\ntime <t>\n" || body.
func checkCosignature(n *note.Note, body, clockKey string) (int64, error) {
	parts := strings.SplitN(clockKey, "+", 3)
	if len(parts) != 3 {
		return 0, fmt.Errorf("clock key %q is not name+id+key", clockKey)
	}
	material, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(material) != 1+ed25519.PublicKeySize || material[0] != sigCosignature {
		return 0, fmt.Errorf("clock key %q is not a type 0x04 Ed25519 key", clockKey)
	}
	idHash := sha256.Sum256(append([]byte(parts[0]+"\n"), material...))
	id := binary.BigEndian.Uint32(idHash[:4])
	if fmt.Sprintf("%08x", id) != parts[1] {
		return 0, fmt.Errorf("clock key ID %s does not match its key", parts[1])
	}
	for _, sig := range n.UnverifiedSigs {
		if sig.Name != parts[0] || sig.Hash != id {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(sig.Base64)
		if err != nil || len(raw) != 4+8+ed25519.SignatureSize {
			return 0, errors.New("the clock's signature is not key ID, time and Ed25519 signature")
		}
		t := binary.BigEndian.Uint64(raw[4:12])
		msg := fmt.Sprintf("cosignature/v1\ntime %d\n%s", t, body)
		if !ed25519.Verify(material[1:], []byte(msg), raw[12:]) {
			return 0, errors.New("the clock's cosignature does not verify")
		}
		return int64(t), nil
	}
	return 0, fmt.Errorf("no signature by the clock key %s", parts[0])
}

// c2spPath maps Go's tile path tile/<H>/<L>/<N>[.p/<W>] (data tiles: L = "data") to C2SP
// tlog-tiles' tile/<L>/<N>[.p/<W>] (entry bundles: "entries"), which has no height.
func c2spPath(t tlog.Tile) string {
	rest := strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", t.H))
	if strings.HasPrefix(rest, "data/") {
		rest = "entries/" + strings.TrimPrefix(rest, "data/")
	}
	return "tile/" + rest
}

// tiles reads C2SP tiles over HTTP, each once. It is a tlog.TileReader.
type tiles struct {
	base  string
	cache map[string][]byte
	reads int
}

func (ts *tiles) Height() int { return tileHeight }

func (ts *tiles) fetch(t tlog.Tile) ([]byte, error) {
	p := c2spPath(t)
	if data, ok := ts.cache[p]; ok {
		return data, nil
	}
	data, err := get(ts.base + "/" + p)
	if err != nil {
		return nil, err
	}
	ts.reads++
	ts.cache[p] = data
	return data, nil
}

func (ts *tiles) ReadTiles(list []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(list))
	for i, t := range list {
		data, err := ts.fetch(t)
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (ts *tiles) SaveTiles([]tlog.Tile, [][]byte) {}

// widthAt is the width of tile t in the tree of size n (256, or the rightmost partial).
func widthAt(t tlog.Tile, n int64) int {
	hashes := n // entry bundles (L = -1) hold one entry per leaf
	if t.L > 0 {
		hashes = n >> uint(t.H*t.L)
	}
	w := hashes - t.N*tileWidth
	if w > tileWidth {
		w = tileWidth
	}
	return int(w)
}

// rawHashes is a tlog.HashReader reading hashes straight from the tiles of the tree of size n,
// with no authentication: tlog.TreeHash over it recomputes the root from the published bytes.
type rawHashes struct {
	ts *tiles
	n  int64
}

func (r rawHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		t := tlog.TileForIndex(tileHeight, x)
		t.W = widthAt(t, r.n)
		data, err := r.ts.fetch(t)
		if err != nil {
			return nil, err
		}
		if len(data) != t.W*tlog.HashSize {
			return nil, fmt.Errorf("%s holds %d bytes, not %d", c2spPath(t), len(data), t.W*tlog.HashSize)
		}
		if out[i], err = tlog.HashFromTile(t, data, x); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkLeaves recomputes the root from every leaf hash. tlog.TileHashReader alone is not enough:
// in x/mod v0.7.0 it leaves some full tiles unauthenticated when two of the tree's perfect
// subtrees share one tile (its loop over child tiles starts at len(stx), not at the number of
// tiles those subtrees needed), so a tampered leaf tile could pass it.
func checkLeaves(leaves []tlog.Hash, tree tlog.Tree) error {
	var stored []tlog.Hash
	read := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			out[i] = stored[x]
		}
		return out, nil
	})
	for i, leaf := range leaves {
		hs, err := tlog.StoredHashesForRecordHash(int64(i), leaf, read)
		if err != nil {
			return err
		}
		stored = append(stored, hs...)
	}
	root, err := tlog.TreeHash(tree.N, read)
	if err == nil && root != tree.Hash {
		err = fmt.Errorf("the leaf hashes of the tiles hash to %s, the checkpoint says %s", root, tree.Hash)
	}
	return err
}

// decodeBundle splits an entry bundle: each entry preceded by its length as a big-endian uint16.
func decodeBundle(data []byte) ([][]byte, error) {
	var out [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, errors.New("bundle truncated in a length")
		}
		n := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+n {
			return nil, errors.New("bundle truncated in an entry")
		}
		out = append(out, data[2:2+n])
		data = data[2+n:]
	}
	return out, nil
}

// receipt is the part of a notar receipt this program reads.
type receipt struct {
	Format  string `json:"format"`
	Digest  string `json:"digest"`
	Salt    string `json:"salt"`
	Subject string `json:"subject"`
	Entry   string `json:"entry"`
	Log     struct {
		Origin    string   `json:"origin"`
		Index     int64    `json:"index"`
		TreeSize  int64    `json:"tree_size"`
		Inclusion []string `json:"inclusion"`
	} `json:"log"`
	Checkpoint string `json:"checkpoint"`
}

// multihash is the digest's multihash: blake3 0x1e 0x20 || 32 bytes, sha256 0x12 0x20 || 32 bytes.
func multihash(digest string) ([]byte, error) {
	alg, value, ok := strings.Cut(digest, ":")
	raw, err := hex.DecodeString(value)
	if !ok || err != nil || len(raw) != 32 || strings.ToLower(value) != value {
		return nil, fmt.Errorf("digest %q is not <alg>:<64 lowercase hex>", digest)
	}
	switch alg {
	case "blake3":
		return append([]byte{0x1e, 0x20}, raw...), nil
	case "sha256":
		return append([]byte{0x12, 0x20}, raw...), nil
	}
	return nil, fmt.Errorf("digest algorithm %q is neither blake3 nor sha256", alg)
}

// entryV2 is 0x02 || SHA-256("notar.entry.v2" || 0x00 || salt || multihash || u8(len(subject)) || subject).
func entryV2(r receipt) ([]byte, error) {
	mh, err := multihash(r.Digest)
	if err != nil {
		return nil, err
	}
	salt, err := hex.DecodeString(r.Salt)
	if err != nil || len(salt) != saltSize {
		return nil, fmt.Errorf("salt %q is not %d bytes of hex", r.Salt, saltSize)
	}
	if len(r.Subject) < 1 || len(r.Subject) > 64 {
		return nil, fmt.Errorf("subject %q is not 1 to 64 bytes", r.Subject)
	}
	h := sha256.New()
	h.Write([]byte(entryV2Domain))
	h.Write([]byte{0})
	h.Write(salt)
	h.Write(mh)
	h.Write([]byte{byte(len(r.Subject))})
	h.Write([]byte(r.Subject))
	return append([]byte{entryV2Type}, h.Sum(nil)...), nil
}

func hashes(hexes []string) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(hexes))
	for i, s := range hexes {
		raw, err := hex.DecodeString(s)
		if err != nil || len(raw) != tlog.HashSize {
			return nil, fmt.Errorf("proof node %d is not 32 bytes of hex", i)
		}
		copy(out[i][:], raw)
	}
	return out, nil
}

// proof is GET /v1/proofs/inclusion or /v1/proofs/consistency.
func proof(url string) ([]tlog.Hash, error) {
	body, err := get(url)
	if err != nil {
		return nil, err
	}
	var p struct {
		Proof []string `json:"proof"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("%s: %v", url, err)
	}
	return hashes(p.Proof)
}

// logState is what the checks of the published log established.
type logState struct {
	cp      checkpoint
	logKey  note.Verifier
	leaves  []tlog.Hash // authenticated leaf hashes, index order
	entries [][]byte    // entries from the bundles, index order
	auth    tlog.HashReader
}

func checkLog(r *report, api, logBase string) (*logState, bool) {
	var ks keys
	body, err := get(api + "/v1/keys")
	if err == nil {
		err = json.Unmarshal(body, &ks)
	}
	if !r.check("keys", err, "GET /v1/keys") {
		return nil, false
	}
	signed, err := get(logBase + "/checkpoint")
	if !r.check("checkpoint fetch", err, "GET "+logBase+"/checkpoint") {
		return nil, false
	}
	// The origin is read unverified only to pick the key named after it; note.Open checks it.
	unverified, err := parseCheckpoint(string(signed[:bytes.Index(append(signed, '\n', '\n'), []byte("\n\n"))+1]))
	if !r.check("checkpoint body", err, "origin, size and root lines") {
		return nil, false
	}
	logVKey, clockVKey, err := ks.forOrigin(unverified.origin)
	var logKey note.Verifier
	if err == nil {
		logKey, err = note.NewVerifier(logVKey)
	}
	if !r.check("log key", err, logVKey) {
		return nil, false
	}
	cp, n, err := openCheckpoint(signed, logKey)
	if !r.check("checkpoint signature", err, fmt.Sprintf("%s size %d signed by %s", cp.origin, cp.tree.N, logKey.Name())) {
		return nil, false
	}
	t, err := checkCosignature(n, n.Text, clockVKey)
	r.check("clock cosignature", err, fmt.Sprintf("tlog-cosignature/v1 at %s", time.Unix(t, 0).UTC().Format(time.RFC3339)))

	ts := &tiles{base: logBase, cache: map[string][]byte{}}
	root, err := tlog.TreeHash(cp.tree.N, rawHashes{ts, cp.tree.N})
	if err == nil && root != cp.tree.Hash {
		err = fmt.Errorf("tlog.TreeHash over the tiles is %s, the checkpoint says %s", root, cp.tree.Hash)
	}
	r.check("tree hash", err, fmt.Sprintf("tlog.TreeHash over %d tiles equals the root", ts.reads))

	st := &logState{cp: cp, logKey: logKey, auth: tlog.TileHashReader(cp.tree, &tiles{base: logBase, cache: map[string][]byte{}})}
	indexes := make([]int64, cp.tree.N)
	for i := range indexes {
		indexes[i] = tlog.StoredHashIndex(0, int64(i))
	}
	st.leaves, err = st.auth.ReadHashes(indexes)
	if err == nil {
		err = checkLeaves(st.leaves, cp.tree)
	}
	if !r.check("tiles", err, fmt.Sprintf("the %d leaf hashes read by tlog.TileHashReader hash to the root", len(indexes))) {
		return st, false
	}

	for k := int64(0); k*tileWidth < cp.tree.N; k++ {
		t := tlog.Tile{H: tileHeight, L: -1, N: k}
		t.W = widthAt(t, cp.tree.N)
		data, err := ts.fetch(t)
		var es [][]byte
		if err == nil {
			es, err = decodeBundle(data)
		}
		if err == nil && len(es) != t.W {
			err = fmt.Errorf("%s holds %d entries, not %d", c2spPath(t), len(es), t.W)
		}
		if err != nil {
			r.check("bundles", err, "")
			return st, false
		}
		st.entries = append(st.entries, es...)
	}
	err = nil
	v2 := 0
	for i, e := range st.entries {
		if tlog.RecordHash(e) != st.leaves[i] && err == nil {
			err = fmt.Errorf("entry %d of the bundles does not hash to leaf %d of the tiles", i, i)
		}
		if len(e) == 1+sha256.Size && e[0] == entryV2Type {
			v2++
		}
	}
	r.check("bundles", err, fmt.Sprintf("the %d entries hash (tlog.RecordHash) to the authenticated leaves", len(st.entries)))
	err = nil
	if v2 != len(st.entries) {
		err = fmt.Errorf("%d of %d entries are not 33 bytes of type 0x02 (format v2)", len(st.entries)-v2, len(st.entries))
	}
	r.check("bundles v2", err, fmt.Sprintf("all %d entries are 0x02 || SHA-256 commitments", v2))
	return st, true
}

func checkReceipt(r *report, api string, st *logState, name, subject string, data []byte, seen map[int64]tlog.Hash) {
	var rc receipt
	if !r.check(name+" json", json.Unmarshal(data, &rc), "parsed") {
		return
	}
	var err error
	if rc.Format != receiptV2 {
		err = fmt.Errorf("format is %q, not %q", rc.Format, receiptV2)
	}
	r.check(name+" format v2", err, receiptV2)

	entry, err := hex.DecodeString(rc.Entry)
	if !r.check(name+" entry hex", err, fmt.Sprintf("%d bytes", len(entry))) {
		return
	}
	want, err := entryV2(rc)
	if err == nil && !bytes.Equal(want, entry) {
		err = fmt.Errorf("entry %s is not the v2 commitment %x of digest, salt and subject", rc.Entry, want)
	}
	r.check(name+" entry v2", err, "0x02 || SHA-256(notar.entry.v2, salt, multihash, subject) recomputed")
	if subject != "" {
		err = nil
		if rc.Subject != subject {
			err = fmt.Errorf("subject is %q, not the notarizing tenant %q", rc.Subject, subject)
		}
		r.check(name+" subject", err, "the notarizing tenant")
	}

	cp, _, err := openCheckpoint([]byte(rc.Checkpoint), st.logKey)
	if err == nil && (cp.origin != rc.Log.Origin || cp.tree.N != rc.Log.TreeSize) {
		err = fmt.Errorf("the receipt names %s size %d, its checkpoint %s size %d", rc.Log.Origin, rc.Log.TreeSize, cp.origin, cp.tree.N)
	}
	if !r.check(name+" checkpoint", err, fmt.Sprintf("size %d signed by %s", cp.tree.N, st.logKey.Name())) {
		return
	}
	seen[cp.tree.N] = cp.tree.Hash

	leaf := tlog.RecordHash(entry)
	p, err := hashes(rc.Log.Inclusion)
	if err == nil {
		err = tlog.CheckRecord(p, cp.tree.N, cp.tree.Hash, rc.Log.Index, leaf)
	}
	r.check(name+" inclusion", err, fmt.Sprintf("tlog.CheckRecord: entry %d in the tree of %d", rc.Log.Index, cp.tree.N))

	n := st.cp.tree.N
	err = nil
	if rc.Log.Index >= n {
		err = fmt.Errorf("entry %d is not in the published tree of %d", rc.Log.Index, n)
	} else if st.leaves[rc.Log.Index] != leaf || !bytes.Equal(st.entries[rc.Log.Index], entry) {
		err = fmt.Errorf("the published entry %d is not the receipt's", rc.Log.Index)
	}
	if !r.check(name+" in log", err, fmt.Sprintf("published entry %d is the receipt's", rc.Log.Index)) {
		return
	}
	mine, err := tlog.ProveRecord(n, rc.Log.Index, st.auth)
	var theirs []tlog.Hash
	if err == nil {
		theirs, err = proof(fmt.Sprintf("%s/v1/proofs/inclusion?index=%d&size=%d", api, rc.Log.Index, n))
	}
	if err == nil && fmt.Sprint(mine) != fmt.Sprint(theirs) {
		err = errors.New("GET /v1/proofs/inclusion differs from tlog.ProveRecord over the tiles")
	}
	if err == nil {
		err = tlog.CheckRecord(theirs, n, st.cp.tree.Hash, rc.Log.Index, leaf)
	}
	r.check(name+" proof api", err, fmt.Sprintf("GET /v1/proofs/inclusion at size %d equals tlog.ProveRecord and passes tlog.CheckRecord", n))

	mh, err := multihash(rc.Digest)
	if err == nil {
		for i, e := range st.entries {
			if bytes.Contains(e, mh[2:]) {
				err = fmt.Errorf("published entry %d holds the receipt's digest in clear", i)
				break
			}
		}
	}
	r.check(name+" hidden", err, "no published entry holds the digest")
}

func checkConsistency(r *report, api string, st *logState, seen map[int64]tlog.Hash) {
	sizes := make([]int64, 0, len(seen))
	for m := range seen {
		sizes = append(sizes, m)
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i] < sizes[j] })
	n, root := st.cp.tree.N, st.cp.tree.Hash
	for _, m := range sizes {
		old, newer, oldRoot, newRoot := m, n, seen[m], root
		if m > n {
			old, newer, oldRoot, newRoot = n, m, root, seen[m]
		}
		if old == newer || old == 0 {
			continue
		}
		p, err := proof(fmt.Sprintf("%s/v1/proofs/consistency?from=%d&to=%d", api, old, newer))
		if err == nil {
			err = tlog.CheckTree(p, newer, newRoot, old, oldRoot)
		}
		r.check(fmt.Sprintf("consistency %d %d", old, newer), err, "tlog.CheckTree")
	}
}

func main() {
	api := flag.String("api", "", "base URL of the notar server (GET /v1/keys, /v1/proofs/…)")
	logBase := flag.String("log", "", "base URL of the published log (default <api>/log)")
	dir := flag.String("receipts", "", "directory of receipt files (*.json), one receipt each")
	subject := flag.String("subject", "", "the tenant that notarized the receipts (checked when given)")
	flag.Parse()
	if *api == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: notar-conformance -api URL [-log URL] [-receipts DIR [-subject TENANT]]")
		os.Exit(2)
	}
	if *logBase == "" {
		*logBase = strings.TrimSuffix(*api, "/") + "/log"
	}
	r := &report{}
	st, ok := checkLog(r, strings.TrimSuffix(*api, "/"), strings.TrimSuffix(*logBase, "/"))
	if ok && *dir != "" {
		files, err := filepath.Glob(filepath.Join(*dir, "*.json"))
		sort.Strings(files)
		if err == nil && len(files) == 0 {
			err = fmt.Errorf("no *.json in %s", *dir)
		}
		r.check("receipts", err, fmt.Sprintf("%d files", len(files)))
		seen := map[int64]tlog.Hash{}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if r.check("receipt "+filepath.Base(f)+" read", err, "read") {
				checkReceipt(r, *api, st, "receipt "+filepath.Base(f), *subject, data, seen)
			}
		}
		checkConsistency(r, *api, st, seen)
	}
	fmt.Printf("%d checks, %d failed\n", r.total, r.failed)
	if r.failed > 0 {
		os.Exit(1)
	}
}
