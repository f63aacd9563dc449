/*
 * test_etf.c - the external term format (up_term_encode, up_term_decode):
 * exact encodings at every integer boundary, round trips of every kind
 * (floats incl. -0.0, atoms incl. UTF-8 and 255 bytes, binaries, nested and
 * improper lists, STRING_EXT lists at the 65535/65536 boundary, pids,
 * references), vectors written by real Erlang (tests/etf_vectors, made by
 * scripts/gen-etf-vectors: decoded, printed and compared with Erlang's
 * ~w text, re-encoded byte for byte), and hostile input: every truncation
 * of every vector, wrong version bytes, huge size fields, unknown tags,
 * 100,000 levels of nesting, heap limits; the decoder must answer with a
 * bad term carrying the documented errno, never crash nor over-allocate.
 */
#include <dirent.h>
#include <math.h>

#include "helpers.h"
#include "fuzz_etf_check.h"

#ifndef ETF_VECTORS_DIR
#define ETF_VECTORS_DIR "tests/etf_vectors"
#endif

/* ------------------------------------------------------------- helpers */

/* Inside a process: encode t into a malloc'd buffer (*n bytes), checking
 * that measuring and writing agree.  NULL (recorded) on failure. */
static uint8_t *enc(up_term t, size_t *n)
{
	long len = up_term_encode(t, NULL, 0);
	if (len <= 0) {
		PFAIL("up_term_encode(size 0) = %ld", len);
		return NULL;
	}
	uint8_t *b = malloc((size_t)len + 1);
	if (!b)
		return NULL;
	b[len] = 0xa5;
	long w = up_term_encode(t, b, (size_t)len);
	if (w != len || b[len] != 0xa5) {
		PFAIL("up_term_encode wrote %ld, measured %ld (guard %#x)", w, len, b[len]);
		free(b);
		return NULL;
	}
	*n = (size_t)len;
	return b;
}

/* The errno a decode of b[0..n) gives (0: a good term, all bytes used). */
static int dec_err(const void *b, size_t n)
{
	size_t used = 0;
	up_term t = up_term_decode(b, n, &used);
	if (up_is_bad(t))
		return up_term_error(t);
	return used == n ? 0 : 1000; /* 1000: a term, but bytes left over */
}

static void hexdump(char *out, size_t sz, const uint8_t *b, size_t n)
{
	size_t k = 0;
	out[0] = 0;
	for (size_t i = 0; i < n && k + 4 < sz; i++)
		k += (size_t)snprintf(out + k, sz - k, "%s%u", i ? "," : "", b[i]);
}

/* t encodes to exactly the bytes want[0..n) and decodes back equal. */
#define CHECK_ENC(t, ...)                                                            \
	do {                                                                         \
		static const uint8_t want_[] = { __VA_ARGS__ };                      \
		check_enc_bytes((t), want_, sizeof(want_), __LINE__);                \
	} while (0)

static void check_enc_bytes(up_term t, const uint8_t *want, size_t nwant, int line)
{
	size_t n = 0;
	uint8_t *b = enc(t, &n);
	if (!b) {
		PFAIL("line %d: encode failed", line);
		return;
	}
	if (n != nwant || memcmp(b, want, n) != 0) {
		char got[200];
		hexdump(got, sizeof got, b, n);
		PFAIL("line %d: encoding <<%s>> (%zu bytes), want %zu bytes", line, got, n, nwant);
	}
	size_t used = 0;
	up_term d = up_term_decode(b, n, &used);
	if (up_is_bad(d) || used != n || !up_equal(d, t))
		PFAIL("line %d: decode back: error %d used %zu of %zu", line, up_term_error(d),
		      used, n);
	free(b);
}

/* encode, decode, equal, encode again to the same bytes (or the errno). */
static void roundtrip(up_term t, int line)
{
	char why[200];
	size_t n = 0;
	if (up_is_bad(t)) {
		PFAIL("line %d: building the term: %d", line, up_term_error(t));
		return;
	}
	uint8_t *b = enc(t, &n);
	if (!b) {
		PFAIL("line %d: encode failed", line);
		return;
	}
	size_t used = 0;
	up_term d = up_term_decode(b, n, &used);
	if (up_is_bad(d) || used != n)
		PFAIL("line %d: decode: error %d used %zu of %zu", line, up_term_error(d), used, n);
	else if (!up_equal(d, t))
		PFAIL("line %d: decode(encode(t)) != t", line);
	int e = 0;
	if (etf_check(b, n, &e, why, sizeof why) != 0 || e != 0)
		PFAIL("line %d: etf_check: %s (errno %d)", line, why, e);
	free(b);
}
#define ROUNDTRIP(t) roundtrip((t), __LINE__)

/* --------------------------------------------------------- Erlang vectors */

struct vec {
	char name[64];
	int expect;          /* 0: decodes; else the negative errno */
	uint8_t *bin, *alt;  /* .bin, .alt.bin (NULL if none) */
	size_t nbin, nalt;
	char *txt;           /* .txt, NUL-terminated (NULL if none) */
	size_t ntxt;
};
static struct vec *vecs;
static size_t nvecs;

static uint8_t *read_file(const char *dir, const char *name, const char *suffix, size_t *n)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s%s", dir, name, suffix);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, len = 0;
	uint8_t *b = malloc(cap + 1);
	size_t k;
	while (b && (k = fread(b + len, 1, cap - len, f)) > 0) {
		len += k;
		if (len == cap) {
			uint8_t *nb = realloc(b, 2 * cap + 1);
			if (!nb) {
				free(b);
				b = NULL;
				break;
			}
			b = nb;
			cap *= 2;
		}
	}
	fclose(f);
	if (b)
		b[len] = 0;
	*n = len;
	return b;
}

static int errno_by_name(const char *s)
{
	if (!strcmp(s, "ok"))
		return 0;
	if (!strcmp(s, "EINVAL"))
		return -EINVAL;
	if (!strcmp(s, "ERANGE"))
		return -ERANGE;
	if (!strcmp(s, "EMSGSIZE"))
		return -EMSGSIZE;
	return 1;
}

/* Read MANIFEST and the files it names (on the test thread). */
static int load_vectors(void)
{
	size_t n = 0;
	char *man = (char *)read_file(ETF_VECTORS_DIR, "MANIFEST", "", &n);
	if (!man)
		return -1;
	size_t cap = 0;
	char *save = NULL;
	for (char *line = strtok_r(man, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[64], what[32];
		if (sscanf(line, "%63s %31s", name, what) != 2)
			continue;
		if (nvecs == cap) {
			cap = cap ? 2 * cap : 64;
			vecs = realloc(vecs, cap * sizeof(*vecs));
			if (!vecs)
				return -1;
		}
		struct vec *v = &vecs[nvecs++];
		memset(v, 0, sizeof *v);
		snprintf(v->name, sizeof v->name, "%s", name);
		v->expect = errno_by_name(what);
		v->bin = read_file(ETF_VECTORS_DIR, name, ".bin", &v->nbin);
		v->alt = read_file(ETF_VECTORS_DIR, name, ".alt.bin", &v->nalt);
		v->txt = (char *)read_file(ETF_VECTORS_DIR, name, ".txt", &v->ntxt);
		if (!v->bin || v->expect == 1)
			return -1;
	}
	free(man);
	return nvecs ? 0 : -1;
}

/*
 * Where up_term_format's text differs from Erlang's io_lib:format("~tw"):
 * the vector, and what uproc prints instead (so that a change on either
 * side shows: a difference that goes away fails too, to be dropped here).
 * Floats and atoms print as Erlang's do; the one difference left is by
 * choice: a printable binary prints as a string (<<"abc">>, ~p's form),
 * where ~w prints its bytes (<<97,98,99>>).
 */
static const struct {
	const char *name, *uproc;
} format_diffs[] = {
	{ "list_mixed", "[1,a,<<\"x\">>,{},2.5,-7,[],[115]]" },
	{ "bin_abc", "<<\"abc\">>" },
	{ "bin_quote", "<<\"a\\\"b\\\\c\">>" },
	{ "bin_in_tuple", "{<<\"k\">>,<<>>}" },
	{ NULL, NULL },
};

static const char *format_diff_for(const char *name)
{
	for (size_t i = 0; format_diffs[i].name; i++)
		if (!strcmp(format_diffs[i].name, name))
			return format_diffs[i].uproc;
	return NULL;
}

/* ETF_FORMAT_DUMP=1: print a format_diffs line for a difference found. */
static void dump_c_string(const char *name, const char *text)
{
	fprintf(stderr, "\t{ \"%s\", \"", name);
	for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(stderr, "\\%c", *c);
		else if (*c < 32 || *c >= 127)
			fprintf(stderr, "\\x%02x\"\"", *c);
		else
			fputc(*c, stderr);
	}
	fprintf(stderr, "\" },\n");
}

struct vec_stats {
	int decoded, rejected, texts, texts_differ, alts;
};

static void vectors_proc(void *arg)
{
	struct vec_stats *st = arg;
	size_t tcap = 1 << 20;
	char *text = malloc(tcap);
	char why[200];
	if (!text) {
		PFAIL("malloc");
		return;
	}
	for (size_t i = 0; i < nvecs; i++) {
		struct vec *v = &vecs[i];
		long mark = up_heap_mark();
		size_t used = 0;
		up_term t = up_term_decode(v->bin, v->nbin, &used);
		int e = 0;
		if (etf_check(v->bin, v->nbin, &e, why, sizeof why) != 0)
			PFAIL("%s: etf_check: %s", v->name, why);
		if (v->expect) {
			if (up_term_error(t) != v->expect)
				PFAIL("%s: decode gives %d, want %d", v->name, up_term_error(t),
				      v->expect);
			st->rejected++;
			up_heap_reset(mark);
			continue;
		}
		if (up_is_bad(t) || used != v->nbin) {
			PFAIL("%s: decode: error %d, used %zu of %zu", v->name, up_term_error(t), used,
			      v->nbin);
			up_heap_reset(mark);
			continue;
		}
		st->decoded++;
		/* re-encoded: Erlang's bytes exactly */
		size_t n = 0;
		uint8_t *b = enc(t, &n);
		if (b && (n != v->nbin || memcmp(b, v->bin, n) != 0)) {
			size_t k = 0;
			while (k < n && k < v->nbin && b[k] == v->bin[k])
				k++;
			PFAIL("%s: re-encoding differs from Erlang's (%zu vs %zu bytes, first "
			      "difference at byte %zu)", v->name, n, v->nbin, k);
		}
		free(b);
		/* Erlang's other encoding (OTP 25's default) decodes to the same term */
		if (v->alt) {
			st->alts++;
			size_t ua = 0;
			up_term ta = up_term_decode(v->alt, v->nalt, &ua);
			if (up_is_bad(ta) || ua != v->nalt || !up_equal(ta, t))
				PFAIL("%s.alt: decode: error %d used %zu of %zu, equal %d", v->name,
				      up_term_error(ta), ua, v->nalt, up_equal(ta, t));
			if (etf_check(v->alt, v->nalt, &e, why, sizeof why) != 0)
				PFAIL("%s.alt: etf_check: %s", v->name, why);
		}
		/* printed as Erlang's ~w */
		if (v->txt) {
			st->texts++;
			long tl = up_term_format(t, text, tcap);
			const char *want = format_diff_for(v->name);
			if (tl < 0 || (size_t)tl >= tcap) {
				PFAIL("%s: up_term_format = %ld", v->name, tl);
			} else if (want) {
				st->texts_differ++;
				if (strcmp(text, want) != 0)
					PFAIL("%s: uproc prints '%s', the known difference says '%s' "
					      "(Erlang: '%s')", v->name, text, want, v->txt);
				if (!strcmp(text, v->txt))
					PFAIL("%s: now prints as Erlang does ('%s'): drop it from "
					      "format_diffs", v->name, text);
			} else if (strcmp(text, v->txt) != 0) {
				PFAIL("%s: uproc prints '%s', Erlang '%s'", v->name, text, v->txt);
				if (getenv("ETF_FORMAT_DUMP"))
					dump_c_string(v->name, text);
			}
		}
		up_heap_reset(mark);
	}
	free(text);
}

static void test_erlang_vectors(void **state)
{
	(void)state;
	struct vec_stats st = { 0 };
	struct up_run_opts o = run_opts(1);
	assert_int_equal(up_run(vectors_proc, &st, &o), 0);
	print_message("  %d vectors decoded, %d rejected as expected, %d alternative "
		      "encodings, %d texts compared (%d known differences)\n",
		      st.decoded, st.rejected, st.alts, st.texts, st.texts_differ);
	assert_no_pfail();
	assert_int_equal((size_t)(st.decoded + st.rejected), nvecs);
}

/* ------------------------------------------------- exact encodings */

static void enc_bytes_proc(void *arg)
{
	(void)arg;
	CHECK_ENC(up_int(0), 131, 97, 0);
	CHECK_ENC(up_int(255), 131, 97, 255);
	CHECK_ENC(up_int(256), 131, 98, 0, 0, 1, 0);
	CHECK_ENC(up_int(-1), 131, 98, 255, 255, 255, 255);
	CHECK_ENC(up_int((1 << 27) - 1), 131, 98, 7, 255, 255, 255);
	CHECK_ENC(up_int(-(1 << 27)), 131, 98, 248, 0, 0, 0);
	CHECK_ENC(up_int(INT32_MAX), 131, 98, 127, 255, 255, 255);
	CHECK_ENC(up_int(INT32_MIN), 131, 98, 128, 0, 0, 0);
	CHECK_ENC(up_int((int64_t)1 << 31), 131, 110, 4, 0, 0, 0, 0, 128);
	CHECK_ENC(up_int(-((int64_t)1 << 31) - 1), 131, 110, 4, 1, 1, 0, 0, 128);
	CHECK_ENC(up_int((int64_t)1 << 32), 131, 110, 5, 0, 0, 0, 0, 0, 1);
	CHECK_ENC(up_int((int64_t)1 << 62), 131, 110, 8, 0, 0, 0, 0, 0, 0, 0, 0, 64);
	CHECK_ENC(up_int(INT64_MAX), 131, 110, 8, 0, 255, 255, 255, 255, 255, 255, 255, 127);
	CHECK_ENC(up_int(INT64_MIN), 131, 110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128);
	CHECK_ENC(up_float(1.0), 131, 70, 63, 240, 0, 0, 0, 0, 0, 0);
	CHECK_ENC(up_float(-0.0), 131, 70, 128, 0, 0, 0, 0, 0, 0, 0);
	CHECK_ENC(up_atom("ok"), 131, 119, 2, 'o', 'k');
	CHECK_ENC(up_atom("\xce\xb1"), 131, 119, 2, 206, 177);
	CHECK_ENC(UP_NIL, 131, 106);
	CHECK_ENC(up_tuple(0, NULL), 131, 104, 0);
	CHECK_ENC(up_tuplev(2, up_atom("a"), up_int(1)), 131, 104, 2, 119, 1, 'a', 97, 1);
	CHECK_ENC(up_binary("", 0), 131, 109, 0, 0, 0, 0);
	CHECK_ENC(up_binary("ab", 2), 131, 109, 0, 0, 0, 2, 'a', 'b');
	up_term l3[] = { up_int(1), up_int(2), up_int(3) };
	CHECK_ENC(up_list(3, l3), 131, 107, 0, 3, 1, 2, 3);
	CHECK_ENC(up_cons(up_int(1), up_int(2)), 131, 108, 0, 0, 0, 1, 97, 1, 97, 2);
	CHECK_ENC(up_cons(up_atom("a"), UP_NIL), 131, 108, 0, 0, 0, 1, 119, 1, 'a', 106);
	CHECK_ENC(up_cons(up_int(256), UP_NIL), 131, 108, 0, 0, 0, 1, 98, 0, 0, 1, 0, 106);
	/* a byte list with an improper tail is no string */
	CHECK_ENC(up_cons(up_int(1), up_cons(up_int(2), up_int(3))), 131, 108, 0, 0, 0, 2, 97,
		  1, 97, 2, 97, 3);
	/* pids: ID = low 28 bits, Serial = the rest */
	CHECK_ENC(up_pid_term((up_pid)5 << 28 | 12345), 131, 88, 119, 13, 'n', 'o', 'n', 'o',
		  'd', 'e', '@', 'n', 'o', 'h', 'o', 's', 't', 0, 0, 0x30, 0x39, 0, 0, 0, 5, 0,
		  0, 0, 0);

	/* a short buffer: the size needed, never a byte past size */
	uint8_t b[16];
	memset(b, 0xee, sizeof b);
	up_term t = up_tuplev(2, up_atom("hello"), up_int(1000));
	PCHECK_EQ(up_term_encode(t, b, 4), 15);
	PCHECK(b[0] == 131 && b[1] == 104 && b[2] == 2 && b[3] == 119 && b[4] == 0xee);
	PCHECK_EQ(up_term_encode(t, b, 0), 15);
	PCHECK_EQ(up_term_encode(t, NULL, 0), 15);
	PCHECK_EQ(up_term_encode(t, NULL, 4), -EINVAL);
	PCHECK_EQ(up_term_encode(up_atom(NULL), b, sizeof b), -EINVAL);
	PCHECK_EQ(up_term_encode(up_tuplev(1, up_atom(NULL)), b, sizeof b), -EINVAL);
}

static void test_encode_bytes(void **state)
{
	(void)state;
	RUN_OK(enc_bytes_proc, NULL, 1);
}

/* ----------------------------------------------------- round trips */

static void roundtrip_proc(void *arg)
{
	(void)arg;
	static const int64_t ints[] = {
		0, 1, 255, 256, -1, -255, -256, (1 << 27) - 1, -(1 << 27), INT32_MAX,
		INT32_MIN, (int64_t)INT32_MAX + 1, (int64_t)INT32_MIN - 1, (int64_t)1 << 32,
		((int64_t)1 << 40) + 3, ((int64_t)1 << 62) - 1, (int64_t)1 << 62,
		-((int64_t)1 << 62), -((int64_t)1 << 62) - 1, INT64_MAX, INT64_MIN, INT64_MIN + 1,
	};
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
		ROUNDTRIP(up_int(ints[i]));
	/* every power of two and its neighbours */
	for (int s = 0; s < 63; s++)
		for (int64_t d = -1; d <= 1; d++) {
			ROUNDTRIP(up_int(((int64_t)1 << s) + d));
			ROUNDTRIP(up_int(-((int64_t)1 << s) + d));
		}

	static const double fl[] = { 0.0, 1.0, -1.5, 0.1, 1e300, -1e300, 1e-300, 5e-324,
				     1.7976931348623157e308, 3.141592653589793 };
	for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++)
		ROUNDTRIP(up_float(fl[i]));

	ROUNDTRIP(up_atom("ok"));
	ROUNDTRIP(up_atom("h\xc3\xa9llo"));              /* héllo */
	ROUNDTRIP(up_atom("\xf0\x9f\x98\x80"));          /* an emoji: 4 bytes */
	char a255[256];
	memset(a255, 'z', 255);
	ROUNDTRIP(up_atom_len(a255, 255));
	ROUNDTRIP(up_atom_len("\0", 1));                 /* '\0' is a valid atom */

	ROUNDTRIP(up_binary("", 0));
	ROUNDTRIP(up_binary("abc", 3));
	size_t big = 3u << 20;
	uint8_t *bb = malloc(big);
	for (size_t i = 0; bb && i < big; i++)
		bb[i] = (uint8_t)(i * 7 + (i >> 9));
	if (bb)
		ROUNDTRIP(up_binary(bb, big));
	free(bb);

	ROUNDTRIP(up_tuple(0, NULL));
	ROUNDTRIP(up_tuplev(3, up_atom("a"), up_int(-5), up_float(2.5)));
	up_term el[300];
	for (int i = 0; i < 300; i++)
		el[i] = i % 3 ? up_int(i * 1000) : up_atom("x");
	ROUNDTRIP(up_tuple(255, el));
	ROUNDTRIP(up_tuple(256, el));
	ROUNDTRIP(up_tuple(300, el));

	ROUNDTRIP(UP_NIL);
	ROUNDTRIP(up_list(300, el));
	ROUNDTRIP(up_cons(UP_NIL, UP_NIL));
	ROUNDTRIP(up_cons(up_int(1), up_int(2)));                 /* [1|2] */
	ROUNDTRIP(up_cons(up_atom("a"), up_atom("b")));           /* [a|b] */
	ROUNDTRIP(up_cons(up_int(1), up_binary("x", 1)));
	ROUNDTRIP(up_cons(up_int(1), up_cons(up_int(2), up_tuple(0, NULL))));
	ROUNDTRIP(up_tuplev(2, up_list(300, el), up_cons(up_list(3, el), up_float(-0.5))));

	ROUNDTRIP(up_pid_term(up_self()));
	ROUNDTRIP(up_pid_term((up_pid)1));
	ROUNDTRIP(up_pid_term(((up_pid)UINT32_MAX << 28) | ((1 << 28) - 1)));
	ROUNDTRIP(up_make_ref());
	up_term r = up_make_ref();
	ROUNDTRIP(up_tuplev(3, r, up_pid_term(up_self()), up_list(2, (up_term[]){ r, r })));

	/* the decoded pid is the same pid, the decoded ref equal, not the same word */
	up_term tp = up_pid_term(up_self());
	size_t n;
	uint8_t *b = enc(tp, &n);
	up_pid p = 0;
	if (b) {
		up_term d = up_term_decode(b, n, NULL);
		PCHECK(up_get_pid(d, &p) == 0 && p == up_self());
	}
	free(b);
	b = enc(r, &n);
	if (b) {
		up_term d = up_term_decode(b, n, NULL);
		PCHECK(up_kind_of(d) == UP_K_REF && up_equal(d, r) && up_compare(d, r) == 0);
		PCHECK(!up_equal(d, up_make_ref()));
	}
	free(b);
}

static void test_roundtrip_kinds(void **state)
{
	(void)state;
	RUN_OK(roundtrip_proc, NULL, 1);
}

/* ---------------------------------------------------------- floats */

static void floats_proc(void *arg)
{
	(void)arg;
	uint8_t b[16];
	PCHECK_EQ(up_term_encode(up_float(NAN), b, sizeof b), -EINVAL);
	PCHECK_EQ(up_term_encode(up_float(INFINITY), b, sizeof b), -EINVAL);
	PCHECK_EQ(up_term_encode(up_float(-INFINITY), NULL, 0), -EINVAL);
	PCHECK_EQ(up_term_encode(up_tuplev(2, up_int(1), up_float(NAN)), b, sizeof b), -EINVAL);
	PCHECK_EQ(up_term_encode(up_cons(up_int(1), up_float(NAN)), NULL, 0), -EINVAL);

	/* -0.0 keeps its sign */
	size_t n = 0;
	uint8_t *e = enc(up_float(-0.0), &n);
	double v = 1;
	if (e)
		PCHECK(up_get_float(up_term_decode(e, n, NULL), &v) == 0 && v == 0 && signbit(v));
	free(e);

	/* NaN and infinities from the wire */
	static const uint8_t nan[] = { 131, 70, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0 };
	static const uint8_t inf[] = { 131, 70, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0 };
	static const uint8_t ninf[] = { 131, 70, 0xff, 0xf0, 0, 0, 0, 0, 0, 0 };
	PCHECK_EQ(dec_err(nan, sizeof nan), -EINVAL);
	PCHECK_EQ(dec_err(inf, sizeof inf), -EINVAL);
	PCHECK_EQ(dec_err(ninf, sizeof ninf), -EINVAL);
	/* FLOAT_EXT (the old 31-byte text form) is not supported */
	uint8_t old[32] = { 131, 99 };
	memcpy(old + 2, "1.00000000000000000000e+00", 26);
	PCHECK_EQ(dec_err(old, sizeof old), -EINVAL);
}

static void test_floats(void **state)
{
	(void)state;
	RUN_OK(floats_proc, NULL, 1);
}

/* ----------------------------------------------------------- atoms */

static void atoms_proc(void *arg)
{
	(void)arg;
	const char *name;
	size_t len;
	uint8_t b[600];

	/* not UTF-8: cannot be encoded */
	PCHECK_EQ(up_term_encode(up_atom("\xff"), b, sizeof b), -EINVAL);
	PCHECK_EQ(up_term_encode(up_atom("a\xc3"), b, sizeof b), -EINVAL);
	PCHECK_EQ(up_term_encode(up_atom("\xc0\x80"), b, sizeof b), -EINVAL);       /* overlong */
	PCHECK_EQ(up_term_encode(up_atom("\xed\xa0\x80"), b, sizeof b), -EINVAL);   /* surrogate */
	PCHECK_EQ(up_term_encode(up_atom("\xf4\x90\x80\x80"), b, sizeof b), -EINVAL); /* > 10FFFF */

	/* the four atom tags */
	static const uint8_t latin1[] = { 131, 100, 0, 3, 'h', 0xe9, 'l' };
	static const uint8_t small_latin1[] = { 131, 115, 2, 0xe9, 'x' };
	static const uint8_t utf8[] = { 131, 118, 0, 2, 0xce, 0xb1 };
	static const uint8_t small_utf8[] = { 131, 119, 3, 'h', 0xc3, 0xa9 };
	up_term t = up_term_decode(latin1, sizeof latin1, NULL);
	PCHECK(up_get_atom(t, &name, &len) == 0 && len == 4 && !memcmp(name, "h\xc3\xa9l", 4));
	t = up_term_decode(small_latin1, sizeof small_latin1, NULL);
	PCHECK(up_get_atom(t, &name, &len) == 0 && len == 3 && !memcmp(name, "\xc3\xa9x", 3));
	t = up_term_decode(utf8, sizeof utf8, NULL);
	PCHECK(up_get_atom(t, &name, &len) == 0 && len == 2 && !memcmp(name, "\xce\xb1", 2));
	t = up_term_decode(small_utf8, sizeof small_utf8, NULL);
	PCHECK(up_equal(t, up_atom("h\xc3\xa9")));

	/* invalid UTF-8 on the wire, empty and too long names */
	static const uint8_t bad1[] = { 131, 119, 1, 0xff };
	static const uint8_t bad2[] = { 131, 119, 2, 0xc3, 'a' };
	static const uint8_t bad3[] = { 131, 118, 0, 3, 0xe2, 0x82 , 'x'};
	static const uint8_t empty1[] = { 131, 119, 0 };
	static const uint8_t empty2[] = { 131, 100, 0, 0 };
	PCHECK_EQ(dec_err(bad1, sizeof bad1), -EINVAL);
	PCHECK_EQ(dec_err(bad2, sizeof bad2), -EINVAL);
	PCHECK_EQ(dec_err(bad3, sizeof bad3), -EINVAL);
	PCHECK_EQ(dec_err(empty1, sizeof empty1), -EINVAL);
	PCHECK_EQ(dec_err(empty2, sizeof empty2), -EINVAL);
	/* 256 bytes of UTF-8 (ATOM_UTF8_EXT) */
	b[0] = 131, b[1] = 118, b[2] = 1, b[3] = 0;
	memset(b + 4, 'a', 256);
	PCHECK_EQ(dec_err(b, 260), -EINVAL);
	PCHECK_EQ(dec_err(b, 259), -EMSGSIZE);
	b[2] = 0, b[3] = 255; /* 255: fine */
	PCHECK_EQ(dec_err(b, 259), 0);
	/* 200 Latin-1 letters: 400 bytes of UTF-8, too long for uproc */
	b[1] = 100, b[2] = 0, b[3] = 200;
	memset(b + 4, 0xe9, 200);
	PCHECK_EQ(dec_err(b, 204), -EINVAL);
	/* 127 of them: 254 bytes, fine */
	b[3] = 127;
	PCHECK_EQ(dec_err(b, 131), 0);
}

static void test_atoms(void **state)
{
	(void)state;
	RUN_OK(atoms_proc, NULL, 1);
}

/* ----------------------------------------------------------- lists */

/* A proper list of n copies of v. */
static up_term dup_list(size_t n, up_term v)
{
	up_term t = UP_NIL;
	for (size_t i = 0; i < n; i++)
		t = up_cons(v, t);
	return t;
}

static void lists_proc(void *arg)
{
	(void)arg;
	size_t n = 0;
	/* STRING_EXT up to 65535 elements, LIST_EXT from 65536 (as Erlang) */
	uint8_t *b = enc(dup_list(65535, up_int('x')), &n);
	PCHECK(b && n == 65539 && b[1] == 107 && b[2] == 255 && b[3] == 255);
	free(b);
	b = enc(dup_list(65536, up_int('x')), &n);
	PCHECK(b && n == 6 + 2 * 65536 + 1 && b[1] == 108 && b[n - 1] == 106);
	free(b);
	ROUNDTRIP(dup_list(65535, up_int(0)));
	ROUNDTRIP(dup_list(65536, up_int(255)));
	/* bytes, then something else */
	ROUNDTRIP(up_cons(up_int(1), up_cons(up_int(2), up_cons(up_int(256), UP_NIL))));
	ROUNDTRIP(up_cons(up_int(1), up_cons(up_int(-1), UP_NIL)));
	ROUNDTRIP(up_cons(up_int(1), up_cons(up_float(2.0), UP_NIL)));
	/* a long list: the encoder iterates */
	up_term l = UP_NIL;
	const long long_n = UPT_SCALE(1000000, 300000);
	for (long i = 0; i < long_n; i++)
		l = up_cons(up_tuplev(1, up_int(i)), l);
	b = enc(l, &n);
	if (b) {
		size_t used = 0;
		up_term d = up_term_decode(b, n, &used);
		PCHECK(!up_is_bad(d) && used == n && up_list_length(d) == long_n);
		PCHECK(up_equal(d, l));
	}
	free(b);

	/* decoder: lists continued by their tail */
	static const uint8_t chained[] = { 131, 108, 0, 0, 0, 1, 97, 1, 108, 0, 0, 0, 1, 97, 2,
					   107, 0, 2, 3, 4 };
	static const uint8_t empty_list_ext[] = { 131, 108, 0, 0, 0, 0, 106 };
	static const uint8_t empty_string[] = { 131, 107, 0, 0 };
	static const uint8_t list_tail_tuple[] = { 131, 108, 0, 0, 0, 0, 104, 0 };
	up_term want4 = up_list(4, (up_term[]){ up_int(1), up_int(2), up_int(3), up_int(4) });
	PCHECK(up_equal(up_term_decode(chained, sizeof chained, NULL), want4));
	PCHECK(up_term_decode(empty_list_ext, sizeof empty_list_ext, NULL) == UP_NIL);
	PCHECK(up_term_decode(empty_string, sizeof empty_string, NULL) == UP_NIL);
	PCHECK(up_equal(up_term_decode(list_tail_tuple, sizeof list_tail_tuple, NULL),
			up_tuple(0, NULL)));
	/* 100,000 chained LIST_EXT of one element: one flat list, no nesting */
	size_t k = 100000;
	uint8_t *c = malloc(1 + k * 7 + 1);
	if (c) {
		c[0] = 131;
		for (size_t i = 0; i < k; i++) {
			static const uint8_t cell[] = { 108, 0, 0, 0, 1, 97, 7 };
			memcpy(c + 1 + 7 * i, cell, 7);
		}
		c[1 + 7 * k] = 106;
		up_term d = up_term_decode(c, 2 + 7 * k, NULL);
		PCHECK(up_list_length(d) == (long)k);
		free(c);
	}
}

static void test_lists(void **state)
{
	(void)state;
	RUN_OK(lists_proc, NULL, 1);
}

/* ------------------------------------------------- pids and references */

static void pid_child(void *arg) { (void)arg; }

/* NEW_PID_EXT (or PID_EXT) of node name, ID, Serial, Creation. */
static size_t mk_pid(uint8_t *b, int tag, const char *node, uint32_t id, uint32_t ser,
		     uint32_t cre)
{
	size_t k = 0, nl = strlen(node);
	b[k++] = 131;
	b[k++] = (uint8_t)tag;
	b[k++] = 119;
	b[k++] = (uint8_t)nl;
	memcpy(b + k, node, nl);
	k += nl;
	for (int i = 3; i >= 0; i--)
		b[k++] = (uint8_t)(id >> (8 * i));
	for (int i = 3; i >= 0; i--)
		b[k++] = (uint8_t)(ser >> (8 * i));
	if (tag == 88)
		for (int i = 3; i >= 0; i--)
			b[k++] = (uint8_t)(cre >> (8 * i));
	else
		b[k++] = (uint8_t)cre;
	return k;
}

/* NEWER_REFERENCE_EXT (or NEW_REFERENCE_EXT) with nw id words. */
static size_t mk_ref(uint8_t *b, int tag, const char *node, unsigned nw, uint32_t cre)
{
	size_t k = 0, nl = strlen(node);
	b[k++] = 131;
	b[k++] = (uint8_t)tag;
	b[k++] = (uint8_t)(nw >> 8);
	b[k++] = (uint8_t)nw;
	b[k++] = 119;
	b[k++] = (uint8_t)nl;
	memcpy(b + k, node, nl);
	k += nl;
	if (tag == 90)
		for (int i = 3; i >= 0; i--)
			b[k++] = (uint8_t)(cre >> (8 * i));
	else
		b[k++] = (uint8_t)cre;
	for (unsigned w = 0; w < nw; w++)
		for (int i = 3; i >= 0; i--)
			b[k++] = (uint8_t)((w * 0x01010101u + 5) >> (8 * i));
	return k;
}

static void pids_refs_proc(void *arg)
{
	(void)arg;
	uint8_t b[128];
	up_pid p;
	size_t k;

	/* pids of spawned processes (their slots have generations) */
	for (int i = 0; i < 50; i++) {
		up_pid c = up_spawn(pid_child, NULL);
		ROUNDTRIP(up_pid_term(c));
		up_yield();
	}
	k = mk_pid(b, 88, "nonode@nohost", 12345, 7, 0);
	PCHECK(up_get_pid(up_term_decode(b, k, NULL), &p) == 0 && p == ((up_pid)7 << 28 | 12345));
	k = mk_pid(b, 103, "nonode@nohost", 3, 1, 0); /* the old PID_EXT */
	PCHECK(up_get_pid(up_term_decode(b, k, NULL), &p) == 0 && p == ((up_pid)1 << 28 | 3));
	k = mk_pid(b, 88, "nonode@nohost", (1u << 28) - 1, UINT32_MAX, 0);
	PCHECK(up_get_pid(up_term_decode(b, k, NULL), &p) == 0 &&
	       p == ((up_pid)UINT32_MAX << 28 | ((1 << 28) - 1)));
	k = mk_pid(b, 88, "other@host", 1, 0, 0);
	PCHECK_EQ(dec_err(b, k), -EINVAL);
	k = mk_pid(b, 88, "nonode@nohost", 1, 0, 1);
	PCHECK_EQ(dec_err(b, k), -EINVAL);
	k = mk_pid(b, 103, "nonode@nohost", 1, 0, 2);
	PCHECK_EQ(dec_err(b, k), -EINVAL);
	k = mk_pid(b, 88, "nonode@nohost", 1u << 28, 0, 0);
	PCHECK_EQ(dec_err(b, k), -EINVAL);
	k = mk_pid(b, 88, "nonode@nohost", 0, 0, 0);     /* pid 0 is no process */
	PCHECK_EQ(dec_err(b, k), -EINVAL);
	k = mk_pid(b, 88, "nonode@nohost", 1, 0, 0);
	b[2] = 97; /* the node is not an atom */
	PCHECK_EQ(dec_err(b, k), -EINVAL);

	/* references */
	k = mk_ref(b, 90, "nonode@nohost", 3, 0);
	up_term r = up_term_decode(b, k, NULL);
	PCHECK(up_kind_of(r) == UP_K_REF);
	size_t n = 0;
	uint8_t *e = enc(r, &n);
	PCHECK(e && n == k && !memcmp(e, b, k));
	free(e);
	k = mk_ref(b, 114, "nonode@nohost", 3, 0); /* NEW_REFERENCE_EXT */
	PCHECK(up_equal(up_term_decode(b, k, NULL), r));
	k = mk_ref(b, 90, "nonode@nohost", 2, 0);
	PCHECK_EQ(dec_err(b, k), -EINVAL);
	k = mk_ref(b, 90, "nonode@nohost", 5, 0);
	PCHECK_EQ(dec_err(b, k), -EINVAL);
	k = mk_ref(b, 90, "nonode@nohost", 3, 1);
	PCHECK_EQ(dec_err(b, k), -EINVAL);
	k = mk_ref(b, 90, "a@b", 3, 0);
	PCHECK_EQ(dec_err(b, k), -EINVAL);
	k = mk_ref(b, 90, "nonode@nohost", 3, 0);
	b[3] = 200; /* 200 words claimed, 3 there */
	PCHECK_EQ(dec_err(b, k), -EMSGSIZE);
}

static void test_pids_refs(void **state)
{
	(void)state;
	RUN_OK(pids_refs_proc, NULL, 1);
}

/* ------------------------------------------------------ malformed */

static void malformed_proc(void *arg)
{
	(void)arg;
	/* empty, NULL, version bytes */
	static const uint8_t nil[] = { 131, 106 };
	PCHECK_EQ(dec_err(nil, 0), -EINVAL);
	PCHECK_EQ(up_term_error(up_term_decode(NULL, 0, NULL)), -EINVAL);
	PCHECK_EQ(up_term_error(up_term_decode(NULL, 5, NULL)), -EINVAL);
	for (int v = 0; v < 256; v++) {
		uint8_t b[2] = { (uint8_t)v, 106 };
		PCHECK_EQ(dec_err(b, 2), v == 131 ? 0 : -EINVAL);
	}
	/* trailing bytes: fine with `used`, -EINVAL without */
	static const uint8_t trail[] = { 131, 97, 5, 106, 1, 2 };
	size_t used = 0;
	int64_t v = 0;
	PCHECK(up_get_int(up_term_decode(trail, sizeof trail, &used), &v) == 0 && v == 5 &&
	       used == 3);
	PCHECK_EQ(up_term_error(up_term_decode(trail, sizeof trail, NULL)), -EINVAL);

	/* every tag alone, and every tag with 300 zero bytes after it */
	uint8_t z[302] = { 131 };
	for (int tag = 0; tag < 256; tag++) {
		z[1] = (uint8_t)tag;
		int e = dec_err(z, 2);
		PCHECK(e == -EINVAL || e == -EMSGSIZE || (tag == 106 && e == 0));
		e = dec_err(z, sizeof z);
		int e2 = up_term_error(up_term_decode(z, sizeof z, &used));
		PCHECK(e == 1000 || e == 0 || e == -EINVAL || e == -EMSGSIZE || e == -ERANGE);
		PCHECK(e2 == 0 || e2 == -EINVAL || e2 == -EMSGSIZE || e2 == -ERANGE);
	}

	/* huge size fields: -EMSGSIZE before any allocation */
	static const uint8_t huge[][8] = {
		{ 131, 105, 255, 255, 255, 255, 106 },      /* LARGE_TUPLE_EXT 2^32-1 */
		{ 131, 105, 0, 0, 0, 2, 106 },              /* arity 2, one byte left */
		{ 131, 104, 255, 106, 106 },                /* SMALL_TUPLE_EXT 255 */
		{ 131, 108, 255, 255, 255, 255, 106 },      /* LIST_EXT */
		{ 131, 108, 0, 0, 0, 1, 106 },              /* one element and no tail */
		{ 131, 107, 255, 255, 1, 2 },               /* STRING_EXT */
		{ 131, 109, 127, 255, 255, 255, 1 },        /* BINARY_EXT */
		{ 131, 109, 0, 0, 0, 3, 1, 2 },             /* 3 bytes, 2 there */
		{ 131, 110, 255, 0, 1, 2 },                 /* SMALL_BIG_EXT */
		{ 131, 111, 255, 255, 255, 255, 0, 1 },     /* LARGE_BIG_EXT */
		{ 131, 118, 255, 255, 'a' },                /* ATOM_UTF8_EXT */
		{ 131, 119, 200, 'a' },                     /* SMALL_ATOM_UTF8_EXT */
		{ 131, 100, 1, 0, 'a' },                    /* ATOM_EXT */
	};
	static const size_t hlen[] = { 7, 7, 5, 7, 7, 6, 7, 8, 6, 8, 5, 4, 5 };
	for (size_t i = 0; i < sizeof hlen / sizeof hlen[0]; i++) {
		int e = dec_err(huge[i], hlen[i]);
		if (e != -EMSGSIZE)
			PFAIL("huge size field %zu: %d, want -EMSGSIZE", i, e);
	}
	/* fixed-size fields cut short: -EINVAL */
	static const uint8_t shortf[][4] = {
		{ 131, 97 }, { 131, 98, 0, 0 }, { 131, 70, 0, 0 }, { 131, 105, 0 },
		{ 131, 104 }, { 131, 107, 0 }, { 131, 109, 0, 0 }, { 131, 110, 1 },
	};
	static const size_t slen[] = { 2, 4, 4, 3, 2, 3, 4, 3 };
	for (size_t i = 0; i < sizeof slen / sizeof slen[0]; i++) {
		int e = dec_err(shortf[i], slen[i]);
		if (e != -EINVAL)
			PFAIL("short field %zu: %d, want -EINVAL", i, e);
	}

	/* integers */
	static const uint8_t big0[] = { 131, 110, 0, 0 };                      /* 0 digits */
	static const uint8_t bigm0[] = { 131, 110, 1, 1, 0 };                  /* -0 */
	static const uint8_t bigpad[] = { 131, 110, 12, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	static const uint8_t bigmin[] = { 131, 111, 0, 0, 0, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128 };
	static const uint8_t big2p63[] = { 131, 110, 8, 0, 0, 0, 0, 0, 0, 0, 0, 128 };
	static const uint8_t big9[] = { 131, 110, 9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1 };
	static const uint8_t bigsign[] = { 131, 110, 1, 7, 9 };                /* sign 7: < 0 */
	PCHECK(up_get_int(up_term_decode(big0, sizeof big0, NULL), &v) == 0 && v == 0);
	PCHECK(up_get_int(up_term_decode(bigm0, sizeof bigm0, NULL), &v) == 0 && v == 0);
	PCHECK(up_get_int(up_term_decode(bigpad, sizeof bigpad, NULL), &v) == 0 && v == 5);
	PCHECK(up_get_int(up_term_decode(bigmin, sizeof bigmin, NULL), &v) == 0 && v == INT64_MIN);
	PCHECK(up_get_int(up_term_decode(bigsign, sizeof bigsign, NULL), &v) == 0 && v == -9);
	PCHECK_EQ(dec_err(big2p63, sizeof big2p63), -ERANGE);
	PCHECK_EQ(dec_err(big9, sizeof big9), -ERANGE);

	/* maps, compressed, funs, bit binaries, ports, old refs: unsupported */
	static const uint8_t map[] = { 131, 116, 0, 0, 0, 0 };
	static const uint8_t zlib[] = { 131, 80, 0, 0, 0, 1, 120, 156, 203, 2, 0, 0, 108, 0, 108 };
	static const uint8_t bits[] = { 131, 77, 0, 0, 0, 1, 3, 0xe0 };
	PCHECK_EQ(dec_err(map, sizeof map), -EINVAL);
	PCHECK_EQ(dec_err(zlib, sizeof zlib), -EINVAL);
	PCHECK_EQ(dec_err(bits, sizeof bits), -EINVAL);
}

static void test_malformed(void **state)
{
	(void)state;
	RUN_OK(malformed_proc, NULL, 1);
}

/* Every truncation of every vector (large vectors: a sample of cuts). */
struct trunc_stats {
	long cuts, einval, emsgsize, other;
};

static void truncated_proc(void *arg)
{
	struct trunc_stats *st = arg;
	char why[200];
	for (size_t i = 0; i < nvecs; i++) {
		const struct vec *v = &vecs[i];
		const uint8_t *blobs[2] = { v->bin, v->alt };
		size_t lens[2] = { v->nbin, v->nalt };
		for (int j = 0; j < 2; j++) {
			if (!blobs[j])
				continue;
			size_t n = lens[j];
			size_t step = n <= 4096 ? 1 : n / 1024 + 1;
			for (size_t cut = 0; cut < n; cut += (cut < 512 || cut + 512 > n) ? 1 : step) {
				/* a copy of exactly `cut` bytes: ASan sees any over-read */
				uint8_t *c = malloc(cut ? cut : 1);
				if (!c)
					continue;
				memcpy(c, blobs[j], cut);
				int e = 0;
				if (etf_check(c, cut, &e, why, sizeof why) != 0)
					PFAIL("%s cut at %zu: %s", v->name, cut, why);
				st->cuts++;
				if (e == -EINVAL)
					st->einval++;
				else if (e == -EMSGSIZE)
					st->emsgsize++;
				else {
					/* a shorter prefix is a term only when the vector
					 * was rejected anyway at a later byte */
					st->other++;
					if (v->expect == 0)
						PFAIL("%s cut at %zu: errno %d", v->name, cut, e);
				}
				free(c);
			}
		}
	}
}

static void test_truncated(void **state)
{
	(void)state;
	struct trunc_stats st = { 0 };
	struct up_run_opts o = run_opts(1);
	assert_int_equal(up_run(truncated_proc, &st, &o), 0);
	print_message("  %ld cuts: %ld -EINVAL, %ld -EMSGSIZE, %ld other\n", st.cuts, st.einval,
		      st.emsgsize, st.other);
	assert_no_pfail();
	assert_true(st.cuts > 10000);
}

/* --------------------------------------------------------- nesting */

static void deep_proc(void *arg)
{
	(void)arg;
	const size_t deep = 100000;
	uint8_t *b = malloc(2 * deep + 2);
	if (!b) {
		PFAIL("malloc");
		return;
	}
	/* 100,000 nested tuples {{{...[]...}}}: too deep */
	b[0] = 131;
	for (size_t i = 0; i < deep; i++)
		b[1 + 2 * i] = 104, b[2 + 2 * i] = 1;
	b[1 + 2 * deep] = 106;
	PCHECK_EQ(dec_err(b, 2 + 2 * deep), -EINVAL);
	/* 10,000 is the limit: accepted, and re-encoded to the same bytes */
	size_t lim = 10000, off = 2 * (deep - lim);
	b[off] = 131;
	size_t n = 0;
	up_term t = up_term_decode(b + off, 2 + 2 * lim, &n);
	PCHECK(!up_is_bad(t) && n == 2 + 2 * lim);
	if (!up_is_bad(t)) {
		uint8_t *e = enc(t, &n);
		PCHECK(e && n == 2 + 2 * lim && !memcmp(e, b + off, n));
		free(e);
	}
	b[off] = 1;
	b[off - 2] = 131;
	PCHECK_EQ(dec_err(b + off - 2, 4 + 2 * lim), -EINVAL); /* 10,001 */

	/* 100,000 nested lists [[[...]]] (LIST_EXT heads) */
	uint8_t *l = malloc(1 + 6 * deep + 1 + deep);
	if (l) {
		size_t k = 0;
		l[k++] = 131;
		for (size_t i = 0; i < deep; i++) {
			static const uint8_t h[] = { 108, 0, 0, 0, 1 };
			memcpy(l + k, h, 5);
			k += 5;
		}
		l[k++] = 106;
		for (size_t i = 0; i < deep; i++)
			l[k++] = 106;
		PCHECK_EQ(dec_err(l, k), -EINVAL);
		free(l);
	}

	/* a term nested 100,000 deep encodes (no recursion), and is refused */
	up_term d = UP_NIL;
	for (size_t i = 0; i < deep; i++)
		d = (i & 1) ? up_tuplev(1, d) : up_cons(d, UP_NIL);
	uint8_t *e = enc(d, &n);
	PCHECK(e != NULL);
	if (e)
		PCHECK_EQ(dec_err(e, n), -EINVAL);
	free(e);
	free(b);
}

static void test_deep(void **state)
{
	(void)state;
	RUN_OK(deep_proc, NULL, 1);
}

/* ------------------------------------------------ memory and errors */

struct heap_arg {
	const uint8_t *b;
	size_t n;
	int err;
	long length;
};

static void heap_child(void *arg)
{
	struct heap_arg *h = arg;
	up_term t = up_term_decode(h->b, h->n, NULL);
	h->err = up_term_error(t);
	h->length = up_is_bad(t) ? -1 : up_list_length(t);
}

static void heap_proc(void *arg)
{
	(void)arg;
	/* the worst case for the heap: LIST_EXT of n [] (1 input byte each) */
	size_t n = 100000, len = 1 + 5 + n + 1;
	uint8_t *b = malloc(len);
	if (!b)
		return;
	b[0] = 131, b[1] = 108;
	b[2] = (uint8_t)(n >> 24), b[3] = (uint8_t)(n >> 16), b[4] = (uint8_t)(n >> 8),
	b[5] = (uint8_t)n;
	memset(b + 6, 106, n + 1);
	struct heap_arg h = { b, len, 1, 0 };
	struct up_spawn_opts o = spawn_opts();
	/* at most 32 heap bytes per input byte (a cons cell is 24) */
	o.heap_limit = 32 * len;
	up_pid c = up_spawn_opt(heap_child, &h, &o);
	PCHECK(c > 0);
	proc_wait_exit(c);
	PCHECK_EQ(h.err, 0);
	PCHECK_EQ(h.length, (long)n);
	/* far too little heap: -ENOMEM, no crash */
	h.err = 1;
	o.heap_limit = 4096;
	c = up_spawn_opt(heap_child, &h, &o);
	PCHECK(c > 0);
	proc_wait_exit(c);
	PCHECK_EQ(h.err, -ENOMEM);
	free(b);
}

static void test_heap_bound(void **state)
{
	(void)state;
	RUN_OK(heap_proc, NULL, 1);
}

static void test_outside_process(void **state)
{
	(void)state;
	static const uint8_t b[] = { 131, 97, 1 };
	uint8_t out[8];
	assert_int_equal(up_term_error(up_term_decode(b, sizeof b, NULL)), -EPERM);
	/* encoding needs no process: immediates can be encoded anywhere */
	assert_int_equal(up_term_encode(UP_NIL, out, sizeof out), 2);
	assert_int_equal(out[1], 106);
}

int main(void)
{
	if (load_vectors() != 0) {
		fprintf(stderr, "test_etf: cannot read the vectors in %s\n", ETF_VECTORS_DIR);
		return 1;
	}
	const struct CMUnitTest tests[] = {
		UPT_TEST(test_encode_bytes),
		UPT_TEST(test_roundtrip_kinds),
		UPT_TEST(test_floats),
		UPT_TEST(test_atoms),
		UPT_TEST(test_lists),
		UPT_TEST(test_pids_refs),
		UPT_TEST(test_erlang_vectors),
		UPT_TEST(test_malformed),
		UPT_TEST(test_truncated),
		UPT_TEST(test_deep),
		UPT_TEST(test_heap_bound),
		UPT_TEST(test_outside_process),
	};
	return UPT_RUN("etf", tests);
}
