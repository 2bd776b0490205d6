/*
 * vault.log._intact: the verifier's fast path over an exported log, in C.
 *
 * One function, intact_leaves(data, first), with the contract of the pure-Python
 * vault.log.verify._intact_leaves_py (which stays the reference and the fallback when this
 * module is not built): ``data`` is consecutive event lines numbered from ``first``, each
 * exactly as the exporter writes it (docs/audit-log.md, "Export"):
 *
 *     {"type":"event","index":N,"event":<leaf bytes>,"leaf":"<base64 of the same bytes>"}
 *
 * It returns the list of leaf bytes when every line is intact and every event member is the
 * canonical encoding of an event with exactly the v1 members, version 1 and index N; None
 * as soon as one is not, and the caller then takes the explaining path line by line.
 *
 * The rule that keeps this safe: whatever this accepts, the Python fast path (and so the
 * explaining path) accepts too; it may refuse more. Canonical here means what
 * orjson.dumps(orjson.loads(x), option=OPT_SORT_KEYS | OPT_STRICT_INTEGER) gives back
 * byte for byte, restricted to the plainest form of each value:
 *
 *   - null, true, false;
 *   - integers without a sign on zero, without leading zeros, at most 2**53 - 1 in magnitude
 *     (no fractions or exponents: events hold none, and refusing them decides nothing);
 *   - strings of valid UTF-8 (no overlong forms, no surrogates), raw except the escapes
 *     orjson writes: \" \\ \b \t \n \f \r and \u00xx (lower-case hex) for the other control
 *     characters;
 *   - objects whose keys are ASCII strings (as the writer's are), in strictly increasing
 *     order of their decoded characters (so no duplicates), and arrays; nesting at most
 *     MAX_DEPTH deep.
 *
 * tests/log/test_intact_native.py checks the two implementations against each other on
 * generated events and on mutated lines.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_DEPTH 32
#define MAX_SAFE_INTEGER 9007199254740991LL

typedef const unsigned char *cursor;

static cursor value(cursor p, cursor end, int depth);

/* A string from its opening quote; returns the position after the closing quote. */
static cursor string(cursor p, cursor end)
{
    if (p >= end || *p != '"')
        return NULL;
    p++;
    while (p < end) {
        unsigned char c = *p;
        if (c == '"')
            return p + 1;
        if (c < 0x20)
            return NULL;
        if (c == '\\') {
            if (p + 1 >= end)
                return NULL;
            switch (p[1]) {
            case '"': case '\\': case 'b': case 't': case 'n': case 'f': case 'r':
                p += 2;
                continue;
            case 'u': {
                /* only \u00xx for a control character orjson has no short escape for */
                if (end - p < 6 || p[2] != '0' || p[3] != '0')
                    return NULL;
                unsigned char hi = p[4], lo = p[5];
                int low;
                if (hi != '0' && hi != '1')
                    return NULL;
                if (lo >= '0' && lo <= '9')
                    low = lo - '0';
                else if (lo >= 'a' && lo <= 'f')
                    low = lo - 'a' + 10;
                else
                    return NULL;
                int code = (hi - '0') * 16 + low;
                if (code == '\b' || code == '\t' || code == '\n' || code == '\f' || code == '\r')
                    return NULL;
                p += 6;
                continue;
            }
            default:
                return NULL;
            }
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        /* UTF-8: the well-formed sequences of the Unicode standard, table 3-7 */
        Py_ssize_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F; /* no surrogates */
        }
        else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        }
        else
            return NULL;
        if (end - p <= need || p[1] < lo || p[1] > hi)
            return NULL;
        for (Py_ssize_t i = 2; i <= need; i++)
            if (p[i] < 0x80 || p[i] > 0xBF)
                return NULL;
        p += need + 1;
    }
    return NULL;
}

/* An object key: a string (as above) of ASCII characters, as the writer's keys are. */
static cursor key(cursor p, cursor end)
{
    cursor key_end = string(p, end);
    if (key_end == NULL)
        return NULL;
    for (cursor c = p; c < key_end; c++)
        if (*c >= 0x80)
            return NULL;
    return key_end;
}

static int hex_digit(unsigned char c)
{
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

/* The next character of a key that string() accepted, at *p, escapes decoded; advances *p. */
static unsigned key_char(cursor *p)
{
    cursor q = *p;
    if (*q != '\\') {
        *p = q + 1;
        return *q;
    }
    *p = q + 2;
    switch (q[1]) {
    case 'b':
        return '\b';
    case 't':
        return '\t';
    case 'n':
        return '\n';
    case 'f':
        return '\f';
    case 'r':
        return '\r';
    case 'u':
        *p = q + 6;
        return (unsigned)(hex_digit(q[4]) * 16 + hex_digit(q[5]));
    default: /* \" and \\ */
        return q[1];
    }
}

/* Whether key a sorts strictly after key b, both the text between their quotes: orjson sorts
 * keys by their characters (for ASCII, their bytes) once escapes are decoded - "a\n" (a
 * newline) comes before "a!". */
static int after(cursor a, cursor a_end, cursor b, cursor b_end)
{
    while (a < a_end && b < b_end) {
        unsigned ca = key_char(&a), cb = key_char(&b);
        if (ca != cb)
            return ca > cb;
    }
    return a < a_end; /* a longer; equal keys are not in order */
}

static cursor integer(cursor p, cursor end)
{
    cursor start = p;
    if (p < end && *p == '-')
        p++;
    if (p >= end)
        return NULL;
    if (*p == '0')
        return (p == start) ? p + 1 : NULL; /* "0", never "-0" */
    long long magnitude = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (++digits > 16)
            return NULL;
        magnitude = magnitude * 10 + (*p - '0');
        p++;
    }
    if (digits == 0 || magnitude > MAX_SAFE_INTEGER)
        return NULL;
    return p;
}

static cursor object(cursor p, cursor end, int depth)
{
    p++; /* '{' */
    if (p < end && *p == '}')
        return p + 1;
    cursor previous = NULL, previous_end = NULL;
    for (;;) {
        cursor key_end = key(p, end);
        if (key_end == NULL)
            return NULL;
        /* compared without their quotes: "" sorts before "!" */
        if (previous != NULL && !after(p + 1, key_end - 1, previous, previous_end))
            return NULL;
        previous = p + 1;
        previous_end = key_end - 1;
        if (key_end >= end || *key_end != ':')
            return NULL;
        p = value(key_end + 1, end, depth + 1);
        if (p == NULL || p >= end)
            return NULL;
        if (*p == '}')
            return p + 1;
        if (*p != ',')
            return NULL;
        p++;
    }
}

static cursor array(cursor p, cursor end, int depth)
{
    p++; /* '[' */
    if (p < end && *p == ']')
        return p + 1;
    for (;;) {
        p = value(p, end, depth + 1);
        if (p == NULL || p >= end)
            return NULL;
        if (*p == ']')
            return p + 1;
        if (*p != ',')
            return NULL;
        p++;
    }
}

static cursor literal(cursor p, cursor end, const char *word, Py_ssize_t len)
{
    return (end - p >= len && memcmp(p, word, (size_t)len) == 0) ? p + len : NULL;
}

static cursor value(cursor p, cursor end, int depth)
{
    if (p >= end || depth > MAX_DEPTH)
        return NULL;
    switch (*p) {
    case '"':
        return string(p, end);
    case '{':
        return object(p, end, depth);
    case '[':
        return array(p, end, depth);
    case 'n':
        return literal(p, end, "null", 4);
    case 't':
        return literal(p, end, "true", 4);
    case 'f':
        return literal(p, end, "false", 5);
    default:
        return integer(p, end);
    }
}

/* The v1 event members in canonical order, each with its opening quote and closing ":. */
#define MEMBER(text) {text, sizeof(text) - 1}
static const struct {
    const char *text;
    Py_ssize_t len;
} EVENT_MEMBERS[] = {
    MEMBER("{\"action\":"), MEMBER("\"actor\":"), MEMBER("\"at\":"), MEMBER("\"client_id\":"),
    MEMBER("\"detail\":"), MEMBER("\"index\":"), MEMBER("\"outcome\":"), MEMBER("\"role\":"),
    MEMBER("\"source\":"), MEMBER("\"subject_id\":"), MEMBER("\"subject_kind\":"),
    MEMBER("\"v\":1}"),
};
#define INDEX_MEMBER 5
#define VERSION_MEMBER 11

/* The event object at p: exactly the v1 members in order, "index" equal to the decimal
 * ``number`` (length ``number_len``), "v" equal to 1; every value canonical. Returns the
 * position after its closing brace. */
static cursor event(cursor p, cursor end, const char *number, Py_ssize_t number_len)
{
    for (int i = 0; i < (int)(sizeof EVENT_MEMBERS / sizeof *EVENT_MEMBERS); i++) {
        if (i > 0) {
            if (p >= end || *p != ',')
                return NULL;
            p++;
        }
        Py_ssize_t len = EVENT_MEMBERS[i].len;
        if (end - p < len || memcmp(p, EVENT_MEMBERS[i].text, (size_t)len) != 0)
            return NULL;
        p += len;
        if (i == VERSION_MEMBER)
            return p; /* "v":1} ends the object */
        if (i == INDEX_MEMBER) {
            if (end - p < number_len || memcmp(p, number, (size_t)number_len) != 0)
                return NULL;
            p += number_len;
        }
        else {
            p = value(p, end, 1);
            if (p == NULL)
                return NULL;
        }
    }
    return NULL; /* not reached */
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Whether [text, text_end) is exactly the padded standard base64 of [raw, raw + n). */
static int is_base64_of(cursor raw, Py_ssize_t n, cursor text, cursor text_end)
{
    if (text_end - text != (n + 2) / 3 * 4)
        return 0;
    Py_ssize_t i = 0;
    for (; i + 3 <= n; i += 3, text += 4) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
        if (text[0] != B64[v >> 18] || text[1] != B64[(v >> 12) & 63] ||
            text[2] != B64[(v >> 6) & 63] || text[3] != B64[v & 63])
            return 0;
    }
    Py_ssize_t left = n - i; /* 0, 1 or 2 bytes in a last, padded group of four characters */
    if (left == 0)
        return 1;
    unsigned v = (unsigned)raw[i] << 16 | (left == 2 ? (unsigned)raw[i + 1] << 8 : 0u);
    return text[0] == B64[v >> 18] && text[1] == B64[(v >> 12) & 63] &&
           text[2] == (left == 2 ? B64[(v >> 6) & 63] : '=') && text[3] == '=';
}

static const char LINE_START[] = "{\"type\":\"event\",\"index\":";
static const char EVENT_MEMBER[] = ",\"event\":";
static const char LEAF_MEMBER[] = ",\"leaf\":\"";
#define LEN(literal) ((Py_ssize_t)(sizeof(literal) - 1))

/* One line [p, end) numbered ``index``; on success, its leaf is [*leaf, *leaf_end). */
static int intact_line(cursor p, cursor end, long long index, cursor *leaf, cursor *leaf_end)
{
    char number[24];
    Py_ssize_t number_len = (Py_ssize_t)snprintf(number, sizeof number, "%lld", index);
    if (end - p < LEN(LINE_START) || memcmp(p, LINE_START, LEN(LINE_START)) != 0)
        return 0;
    p += LEN(LINE_START);
    if (end - p < number_len || memcmp(p, number, (size_t)number_len) != 0)
        return 0;
    p += number_len;
    if (end - p < LEN(EVENT_MEMBER) || memcmp(p, EVENT_MEMBER, LEN(EVENT_MEMBER)) != 0)
        return 0;
    p += LEN(EVENT_MEMBER);
    cursor start = p;
    p = event(p, end, number, number_len);
    if (p == NULL)
        return 0;
    *leaf = start;
    *leaf_end = p;
    if (end - p < LEN(LEAF_MEMBER) + 2 || memcmp(p, LEAF_MEMBER, LEN(LEAF_MEMBER)) != 0)
        return 0;
    p += LEN(LEAF_MEMBER);
    if (end[-2] != '"' || end[-1] != '}')
        return 0;
    return is_base64_of(start, *leaf_end - start, p, end - 2);
}

static PyObject *intact_leaves(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "intact_leaves(data, first) takes two arguments");
        return NULL;
    }
    long long first = PyLong_AsLongLong(args[1]);
    if (first == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return NULL;
        PyErr_Clear(); /* an index no event can have: refused, as by the Python version */
        Py_RETURN_NONE;
    }
    if (first < 0 || first > MAX_SAFE_INTEGER)
        Py_RETURN_NONE;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *leaves = PyList_New(0);
    if (leaves == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    cursor p = view.buf, end = p + view.len;
    long long index = first;
    if (p == end) /* no line at all is one empty line, as for the Python version */
        goto refused;
    while (p < end) {
        cursor nl = memchr(p, '\n', (size_t)(end - p));
        cursor line_end = nl ? nl : end; /* the last line's newline may be missing */
        cursor leaf, leaf_end;
        if (index > MAX_SAFE_INTEGER || !intact_line(p, line_end, index, &leaf, &leaf_end))
            goto refused;
        PyObject *item = PyBytes_FromStringAndSize((const char *)leaf, leaf_end - leaf);
        if (item == NULL || PyList_Append(leaves, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(leaves);
            PyBuffer_Release(&view);
            return NULL;
        }
        Py_DECREF(item);
        p = nl ? nl + 1 : end;
        index++;
    }
    PyBuffer_Release(&view);
    return leaves;
refused:
    Py_DECREF(leaves);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"intact_leaves", (PyCFunction)(void (*)(void))intact_leaves, METH_FASTCALL,
     "intact_leaves(data, first) -> list[bytes] | None: the leaves of consecutive intact "
     "event lines numbered from first, or None (see vault.log.verify._intact_leaves_py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "vault.log._intact",
    "The verifier's fast path in C (see vault.log.verify).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__intact(void)
{
    return PyModule_Create(&module);
}
