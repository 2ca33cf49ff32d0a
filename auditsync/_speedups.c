/*
 * auditsync._speedups: the common server_audit line shapes at C speed.
 *
 * The grammar lives in _auditlog.py; this file reads only the shapes servers write every
 * second -- the MariaDB/RDS date form and the Aurora epoch, names without commas, the
 * standard QUERY, table and connection tails -- and answers None for anything else, so
 * that the Python reader, the reference, decides every unusual line and every error.
 * Whatever this file returns must equal what auditlog._parse_text returns for the same
 * line (tests/test_speedups.py checks it, field by field).
 *
 * Events and origins are the library's own attrs classes. They are built the way their
 * attrs __init__ builds them -- each slot set through its member descriptor, bypassing
 * the frozen __setattr__ -- without the per-field Python calls.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stdint.h>

#define EVENT_FIELDS 16
#define ORIGIN_FIELDS 7
#define MAX_DATE_CACHE 4096

/* Set once by configure(); owned references. */
static PyTypeObject *event_type = NULL;
static PyObject *event_slots[EVENT_FIELDS];
static PyTypeObject *origin_type = NULL;
static PyObject *origin_slots[ORIGIN_FIELDS];
static PyObject *dialect_auto, *dialect_mariadb, *dialect_aurora, *dialect_rds;
static PyObject *utc;

/* Interned strings: operations, connection type names, dict keys. */
enum { OP_QUERY, OP_TABLE, OP_CONNECTION, OP_OTHER_TABLE };
static const char *const operation_names[] = {
    "QUERY", "READ", "WRITE", "CREATE", "DROP", "ALTER",
    "CONNECT", "FAILED_CONNECT", "DISCONNECT", "CHANGEUSER", "PROXY_CONNECT", "RENAME",
};
static const int operation_kinds[] = {
    OP_QUERY, OP_TABLE, OP_TABLE, OP_TABLE, OP_TABLE, OP_TABLE,
    OP_CONNECTION, OP_CONNECTION, OP_CONNECTION, OP_CONNECTION, OP_CONNECTION, OP_OTHER_TABLE,
};
#define OPERATIONS (sizeof(operation_names) / sizeof(operation_names[0]))
static PyObject *operation_strings[OPERATIONS];
static const char *const type_names[] = {
    "UNDEFINED", "TCP/IP", "SOCKET", "NAMED_PIPE", "SSL", "SHARED_MEMORY",
};
#define TYPE_NAMES (sizeof(type_names) / sizeof(type_names[0]))
static PyObject *key_id, *key_timestamp, *key_message, *astimezone_name;

/* --- reading the line ------------------------------------------------------------------ */

typedef struct {
    int kind;
    const void *data;
    Py_ssize_t length;
} Text;

static inline Py_UCS4
at(const Text *t, Py_ssize_t i)
{
    return PyUnicode_READ(t->kind, t->data, i);
}

static inline int
is_digit(Py_UCS4 c)
{
    return c >= '0' && c <= '9';
}

/* The first ``c`` in [start, end), or -1; a loop of its own for each kind (memchr for
 * the one-byte kind, which most text is), so that a 64 KB statement costs one quick scan. */
static Py_ssize_t
find_char(const Text *t, Py_UCS4 c, Py_ssize_t start, Py_ssize_t end)
{
    if (start >= end) {
        return -1;
    }
    if (t->kind == PyUnicode_1BYTE_KIND) {
        if (c > 0xff) {
            return -1;
        }
        const Py_UCS1 *data = (const Py_UCS1 *)t->data;
        const Py_UCS1 *found = memchr(data + start, (int)c, (size_t)(end - start));
        return found == NULL ? -1 : found - data;
    }
    if (t->kind == PyUnicode_2BYTE_KIND) {
        const Py_UCS2 *data = (const Py_UCS2 *)t->data;
        for (Py_ssize_t i = start; i < end; i++) {
            if (data[i] == c) {
                return i;
            }
        }
        return -1;
    }
    const Py_UCS4 *data = (const Py_UCS4 *)t->data;
    for (Py_ssize_t i = start; i < end; i++) {
        if (data[i] == c) {
            return i;
        }
    }
    return -1;
}

static Py_ssize_t
rfind_char(const Text *t, Py_UCS4 c, Py_ssize_t start, Py_ssize_t end)
{
    for (Py_ssize_t i = end - 1; i >= start; i--) {
        if (at(t, i) == c) {
            return i;
        }
    }
    return -1;
}

static int
all_digits(const Text *t, Py_ssize_t start, Py_ssize_t end)
{
    for (Py_ssize_t i = start; i < end; i++) {
        if (!is_digit(at(t, i))) {
            return 0;
        }
    }
    return 1;
}

/* The value of [start, end) of ASCII digits; the caller caps the length at 18. */
static long long
digits_value(const Text *t, Py_ssize_t start, Py_ssize_t end)
{
    long long value = 0;
    for (Py_ssize_t i = start; i < end; i++) {
        value = value * 10 + (long long)(at(t, i) - '0');
    }
    return value;
}

/* An id: 1 to 18 ASCII digits (longer ones, up to the 20 the grammar allows, are left to
 * the Python reader). New reference, or NULL with no exception set when it is not one. */
static PyObject *
read_id(const Text *t, Py_ssize_t start, Py_ssize_t end)
{
    Py_ssize_t size = end - start;
    if (size < 1 || size > 18 || !all_digits(t, start, end)) {
        return NULL;
    }
    return PyLong_FromLongLong(digits_value(t, start, end));
}

/* A return code as auditlog._is_int reads it: an optional minus, 1 to 18 digits here. */
static int
is_retcode(const Text *t, Py_ssize_t start, Py_ssize_t end)
{
    if (start < end && at(t, start) == '-') {
        start++;
    }
    Py_ssize_t size = end - start;
    return size >= 1 && size <= 18 && all_digits(t, start, end);
}

static PyObject *
retcode_value(const Text *t, Py_ssize_t start, Py_ssize_t end)
{
    if (at(t, start) == '-') {
        return PyLong_FromLongLong(-digits_value(t, start + 1, end));
    }
    return PyLong_FromLongLong(digits_value(t, start, end));
}

static int
equals_ascii(const Text *t, Py_ssize_t start, Py_ssize_t end, const char *word)
{
    Py_ssize_t size = (Py_ssize_t)strlen(word);
    if (end - start != size) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        if (at(t, start + i) != (Py_UCS4)(unsigned char)word[i]) {
            return 0;
        }
    }
    return 1;
}

/* --- timestamps -------------------------------------------------------------------------- */

static int
two(const Text *t, Py_ssize_t i)
{
    return (int)(at(t, i) - '0') * 10 + (int)(at(t, i + 1) - '0');
}

/* Days since 1970-01-01 to a civil date (Howard Hinnant's days_from_civil, inverted). */
static void
civil_from_days(long long z, int *year, int *month, int *day)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long y = yoe + era * 400;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    long long d = doy - (153 * mp + 2) / 5 + 1;
    long long m = mp < 10 ? mp + 3 : mp - 9;
    *year = (int)(y + (m <= 2));
    *month = (int)m;
    *day = (int)d;
}

/* 16 digits of microseconds since the epoch (Aurora), always in datetime's range. */
static PyObject *
epoch_time(const Text *t, Py_ssize_t end)
{
    long long micros = digits_value(t, 0, end);
    long long seconds = micros / 1000000;
    int year, month, day;
    civil_from_days(seconds / 86400, &year, &month, &day);
    long long in_day = seconds % 86400;
    return PyDateTimeAPI->DateTime_FromDateAndTime(
        year, month, day, (int)(in_day / 3600), (int)(in_day / 60 % 60), (int)(in_day % 60),
        (int)(micros % 1000000), utc, PyDateTimeAPI->DateTimeType);
}

static int
date_shape(const Text *t)
{
    static const char shape[] = "dddddddd dd:dd:dd";
    for (Py_ssize_t i = 0; i < 17; i++) {
        Py_UCS4 c = at(t, i);
        if (shape[i] == 'd' ? !is_digit(c) : c != (Py_UCS4)shape[i]) {
            return 0;
        }
    }
    return 1;
}

/* The last stamp read and its time: the lines of one second follow each other. */
static Py_UCS4 last_stamp[17];
static PyObject *last_zone = NULL, *last_time = NULL;

static void
remember_time(const Text *t, PyObject *tz, PyObject *moment)
{
    for (Py_ssize_t i = 0; i < 17; i++) {
        last_stamp[i] = at(t, i);
    }
    Py_XSETREF(last_zone, Py_NewRef(tz));
    Py_XSETREF(last_time, Py_NewRef(moment));
}

/* ``YYYYMMDD HH:MM:SS`` in tz, as UTC; cached per stamp in the caller's dict. New
 * reference; NULL with no exception set for a stamp the Python reader must judge. */
static PyObject *
date_time(PyObject *line, const Text *t, PyObject *tz, PyObject *cache)
{
    if (last_time != NULL && last_zone == tz) {
        Py_ssize_t i = 0;
        while (i < 17 && at(t, i) == last_stamp[i]) {
            i++;
        }
        if (i == 17) {
            return Py_NewRef(last_time);
        }
    }
    PyObject *stamp = PyUnicode_Substring(line, 0, 17);
    if (stamp == NULL) {
        return NULL;
    }
    PyObject *found = PyDict_GetItemWithError(cache, stamp);
    if (found != NULL) {
        Py_DECREF(stamp);
        remember_time(t, tz, found);
        return Py_NewRef(found);
    }
    if (PyErr_Occurred()) {
        Py_DECREF(stamp);
        return NULL;
    }
    PyObject *moment = PyDateTimeAPI->DateTime_FromDateAndTime(
        two(t, 0) * 100 + two(t, 2), two(t, 4), two(t, 6), two(t, 9), two(t, 12), two(t, 15),
        0, tz, PyDateTimeAPI->DateTimeType);
    if (moment != NULL && tz != utc) {
        Py_SETREF(moment, PyObject_CallMethodOneArg(moment, astimezone_name, utc));
    }
    if (moment == NULL) {
        Py_DECREF(stamp);
        if (PyErr_ExceptionMatches(PyExc_ValueError) ||
            PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
        }
        return NULL;
    }
    if (PyDict_GET_SIZE(cache) >= MAX_DATE_CACHE) {
        PyDict_Clear(cache);
    }
    int failed = PyDict_SetItem(cache, stamp, moment);
    Py_DECREF(stamp);
    if (failed) {
        Py_DECREF(moment);
        return NULL;
    }
    remember_time(t, tz, moment);
    return moment;
}

/* --- tails ------------------------------------------------------------------------------- */

/* The escape ``\\c`` stands for, or 0 where the backslash stands for itself. */
static inline Py_UCS4
escaped(Py_UCS4 c)
{
    switch (c) {
    case '\\': return '\\';
    case '\'': return '\'';
    case 'n': return '\n';
    case 't': return '\t';
    case 'r': return '\r';
    case 'b': return '\b';
    case 'f': return '\f';
    default: return 0;
    }
}

/* One loop for each kind: statements are dense with escapes, one every few characters. */
#define UNESCAPE_INTO(TYPE)                                                                    \
    do {                                                                                       \
        const TYPE *in = (const TYPE *)t->data;                                                \
        TYPE *into = (TYPE *)out;                                                              \
        for (Py_ssize_t i = first; i < end; i++) {                                             \
            Py_UCS4 plain = in[i] == '\\' && i + 1 < end ? escaped(in[i + 1]) : 0;             \
            into[size++] = plain ? (TYPE)plain : in[i];                                        \
            i += plain != 0;                                                                   \
        }                                                                                      \
    } while (0)

/* Undo the plugin's escapes left to right, as auditlog._unescape does, in the line's own
 * kind (an escape only ever yields ASCII). */
static PyObject *
unescape(PyObject *line, const Text *t, Py_ssize_t start, Py_ssize_t end)
{
    Py_ssize_t first = find_char(t, '\\', start, end);
    if (first == -1) {
        return PyUnicode_Substring(line, start, end);
    }
    int kind = t->kind;
    char *out = PyMem_Malloc((size_t)kind * (size_t)(end - start));
    if (out == NULL) {
        return PyErr_NoMemory();
    }
    Py_ssize_t size = first - start;
    memcpy(out, (const char *)t->data + kind * start, (size_t)(kind * size));
    if (kind == PyUnicode_1BYTE_KIND) {
        UNESCAPE_INTO(Py_UCS1);
    }
    else if (kind == PyUnicode_2BYTE_KIND) {
        UNESCAPE_INTO(Py_UCS2);
    }
    else {
        UNESCAPE_INTO(Py_UCS4);
    }
    PyObject *text = PyUnicode_FromKindAndData(kind, out, size);
    PyMem_Free(out);
    return text;
}

typedef struct {
    PyObject *database, *object, *retcode, *connection_type;
    int rds;
} Tail;

static void
clear_tail(Tail *tail)
{
    Py_CLEAR(tail->database);
    Py_CLEAR(tail->object);
    Py_CLEAR(tail->retcode);
    Py_CLEAR(tail->connection_type);
}

/* Fills ``tail``; returns 1 on success, 0 for "not a common shape", -1 on an error. */
static int
query_tail(PyObject *line, const Text *t, Py_ssize_t start, PyObject *dialect, Tail *tail)
{
    Py_ssize_t end = t->length;
    int rds = end - start >= 2 && at(t, end - 1) == ',' && at(t, end - 2) == ',' &&
              (dialect == dialect_auto || dialect == dialect_rds);
    Py_ssize_t body = rds ? end - 2 : end;
    Py_ssize_t comma = rfind_char(t, ',', start, body);
    if (comma == -1 || !is_retcode(t, comma + 1, body) || comma == start ||
        at(t, comma - 1) != '\'') {
        return 0;
    }
    Py_ssize_t close = comma - 1;
    Py_ssize_t open = find_char(t, '\'', start, comma);
    if (open < start + 1 || open >= close || at(t, open - 1) != ',') {
        return 0;
    }
    /* Every quote inside the query is escaped, and the closing one is not. */
    for (Py_ssize_t i = find_char(t, '\'', open + 1, close); i != -1;
         i = find_char(t, '\'', i + 1, close)) {
        if (at(t, i - 1) != '\\') {
            return 0;
        }
    }
    Py_ssize_t run = close;
    while (run > open + 1 && at(t, run - 1) == '\\') {
        run--;
    }
    if ((close - run) % 2) {
        return 0;
    }
    tail->rds = rds;
    tail->database = PyUnicode_Substring(line, start, open - 1);
    tail->object = tail->database ? unescape(line, t, open + 1, close) : NULL;
    tail->retcode = tail->object ? retcode_value(t, comma + 1, body) : NULL;
    return tail->retcode ? 1 : -1;
}

/* RDS writes a type name, some 5.7 builds a digit, after the status (auditlog's
 * _looks_like_connection_type): [start, comma) is the rest, [comma + 1, end) the last field. */
static int
looks_like_connection_type(const Text *t, Py_ssize_t start, Py_ssize_t comma, Py_ssize_t end)
{
    for (size_t i = 0; i < TYPE_NAMES; i++) {
        if (equals_ascii(t, comma + 1, end, type_names[i])) {
            return 1;
        }
    }
    if (end - comma != 2 || at(t, comma + 1) < '0' || at(t, comma + 1) > '5') {
        return 0;
    }
    Py_ssize_t status = rfind_char(t, ',', start, comma);
    if (status == -1 || status == start) {
        return 0;
    }
    /* _is_int(status), with its 20-digit cap: a longer run is not a status. */
    Py_ssize_t digits = status + 1;
    if (digits < comma && at(t, digits) == '-') {
        digits++;
    }
    if (comma - digits < 1 || comma - digits > 20 || !all_digits(t, digits, comma)) {
        return 0;
    }
    Py_UCS4 before = at(t, status - 1);
    return before == ',' || before == '`';
}

/* ``db,object,status`` in [start, end), as both tails end: the last two commas split it
 * (a PROXY_CONNECT's proxied user, after ",`", is left to the Python reader). */
static int
names_and_status(PyObject *line, const Text *t, Py_ssize_t start, Py_ssize_t end, int proxy,
                 Tail *tail)
{
    Py_ssize_t status = rfind_char(t, ',', start, end);
    if (status == -1) {
        return 0;
    }
    if (proxy) {
        for (Py_ssize_t i = start; i + 1 < status; i++) {
            if (at(t, i) == ',' && at(t, i + 1) == '`') {
                return 0;
            }
        }
    }
    Py_ssize_t comma = rfind_char(t, ',', start, status);
    if (comma == -1) {
        return 0;
    }
    int empty_status = status + 1 == end;
    if (!empty_status && !is_retcode(t, status + 1, end)) {
        return 0;
    }
    tail->database = PyUnicode_Substring(line, start, comma);
    tail->object = tail->database ? PyUnicode_Substring(line, comma + 1, status) : NULL;
    if (tail->object == NULL) {
        return -1;
    }
    tail->retcode = empty_status ? Py_NewRef(Py_None) : retcode_value(t, status + 1, end);
    return tail->retcode ? 1 : -1;
}

static int
connection_tail(PyObject *line, const Text *t, Py_ssize_t start, int proxy, PyObject *dialect,
                Tail *tail)
{
    Py_ssize_t end = t->length;
    Py_ssize_t body = end;
    if (dialect != dialect_mariadb && dialect != dialect_aurora) {
        Py_ssize_t last = rfind_char(t, ',', start, end);
        if (last != -1 &&
            (dialect == dialect_rds || looks_like_connection_type(t, start, last, end))) {
            body = last;
        }
    }
    int found = names_and_status(line, t, start, body, proxy, tail);
    if (found == 1 && body != end) {
        tail->connection_type = PyUnicode_Substring(line, body + 1, end);
        if (tail->connection_type == NULL) {
            return -1;
        }
        tail->rds = 1;
    }
    return found;
}

static int
table_tail(PyObject *line, const Text *t, Py_ssize_t start, Tail *tail)
{
    return names_and_status(line, t, start, t->length, 0, tail);
}

/* --- building instances ------------------------------------------------------------------ */

static int
is_dialect(PyObject *value)
{
    return value == dialect_auto || value == dialect_mariadb || value == dialect_aurora ||
           value == dialect_rds;
}

/* A new instance of an attrs slotted class, its slots set from ``values`` (references
 * stolen, all of them, also on failure).
 *
 * An instance that holds only values the collector does not track (str, int, datetime,
 * None, an origin built here) or a Dialect member cannot be part of a reference cycle,
 * so it is untracked, as CPython untracks such tuples and dicts: the collector then
 * never walks the thousands of events a batch holds. */
static PyObject *
build(PyTypeObject *type, PyObject **slots, PyObject **values, int count)
{
    PyObject *instance = type->tp_alloc(type, 0);
    int i = 0;
    int acyclic = 1;
    if (instance != NULL) {
        for (; i < count; i++) {
            if (acyclic && PyObject_GC_IsTracked(values[i]) && !is_dialect(values[i])) {
                acyclic = 0;
            }
            int failed = Py_TYPE(slots[i])->tp_descr_set(slots[i], instance, values[i]);
            Py_DECREF(values[i]);
            if (failed) {
                Py_CLEAR(instance);
                i++;
                break;
            }
        }
    }
    for (; i < count; i++) {
        Py_DECREF(values[i]);
    }
    if (instance != NULL && acyclic) {
        PyObject_GC_UnTrack(instance);
    }
    return instance;
}

/* The event for ``line``, or None (a new reference to it) when the Python reader must
 * read it, or NULL with an exception set. */
static PyObject *
parse(PyObject *line, PyObject *dialect, PyObject *tz, PyObject *cache, PyObject *origin)
{
    Text text = {PyUnicode_KIND(line), PyUnicode_DATA(line), PyUnicode_GET_LENGTH(line)};
    const Text *t = &text;
    if (!is_dialect(dialect)) {
        Py_RETURN_NONE;
    }
    /* parse_line takes one line end off first; left to it, the batch readers agree. */
    if (t->length > 0 && at(t, t->length - 1) == '\n') {
        Py_RETURN_NONE;
    }
    Py_ssize_t stamp_end = find_char(t, ',', 0, t->length < 18 ? t->length : 18);
    int epoch;
    if (stamp_end == 16 && all_digits(t, 0, 16)) {
        epoch = 1;
    }
    else if (stamp_end == 17 && date_shape(t)) {
        epoch = 0;
    }
    else {
        Py_RETURN_NONE;
    }
    if ((dialect == dialect_aurora && !epoch) || (dialect == dialect_mariadb && epoch)) {
        Py_RETURN_NONE;
    }

    /* The head: serverhost, username, host, connection id, query id, operation. */
    Py_ssize_t commas[6];
    Py_ssize_t position = stamp_end;
    for (int i = 0; i < 6; i++) {
        position = find_char(t, ',', position + 1, t->length);
        if (position == -1) {
            Py_RETURN_NONE;
        }
        commas[i] = position;
    }
    Py_ssize_t operation_start = commas[4] + 1, tail_start = commas[5] + 1;
    int kind = -1;
    PyObject *operation = NULL;
    for (size_t i = 0; i < OPERATIONS; i++) {
        if (equals_ascii(t, operation_start, commas[5], operation_names[i])) {
            kind = operation_kinds[i];
            operation = operation_strings[i];
            break;
        }
    }
    if (kind == -1 || kind == OP_OTHER_TABLE) {
        Py_RETURN_NONE;
    }
    PyObject *connection_id = read_id(t, commas[2] + 1, commas[3]);
    PyObject *query_id = connection_id ? read_id(t, commas[3] + 1, commas[4]) : NULL;
    if (query_id == NULL) {
        Py_XDECREF(connection_id);
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }

    Tail tail = {NULL, NULL, NULL, NULL, 0};
    int found;
    if (kind == OP_QUERY) {
        found = query_tail(line, t, tail_start, dialect, &tail);
    }
    else if (kind == OP_CONNECTION) {
        int proxy = operation == operation_strings[10];
        found = connection_tail(line, t, tail_start, proxy, dialect, &tail);
    }
    else {
        found = table_tail(line, t, tail_start, &tail);
    }
    PyObject *timestamp = NULL;
    if (found == 1) {
        timestamp = epoch ? epoch_time(t, 16) : date_time(line, t, tz, cache);
        if (timestamp == NULL) {
            found = PyErr_Occurred() ? -1 : 0;
        }
    }
    if (found != 1) {
        Py_DECREF(connection_id);
        Py_DECREF(query_id);
        clear_tail(&tail);
        if (found == -1) {
            return NULL;
        }
        Py_RETURN_NONE;
    }

    PyObject *resolved = dialect;
    if (dialect == dialect_auto) {
        resolved = tail.rds ? dialect_rds : epoch ? dialect_aurora : dialect_mariadb;
    }
    /* The text before the server host is kept where the dialect would not write it back. */
    int standard = epoch ? resolved == dialect_aurora : resolved != dialect_aurora;
    PyObject *prefix = standard ? Py_NewRef(Py_None) : PyUnicode_Substring(line, 0, stamp_end + 1);
    PyObject *values[EVENT_FIELDS] = {
        timestamp,
        PyUnicode_Substring(line, stamp_end + 1, commas[0]),
        PyUnicode_Substring(line, commas[0] + 1, commas[1]),
        PyUnicode_Substring(line, commas[1] + 1, commas[2]),
        connection_id,
        query_id,
        Py_NewRef(operation),
        tail.database,
        tail.object,
        tail.retcode,
        tail.connection_type ? tail.connection_type : Py_NewRef(Py_None),
        Py_NewRef(Py_False),
        Py_NewRef(resolved),
        Py_NewRef(origin),
        prefix,
        Py_NewRef(Py_None),
    };
    for (int i = 0; i < EVENT_FIELDS; i++) {
        if (values[i] == NULL) {
            for (int j = 0; j < EVENT_FIELDS; j++) {
                Py_XDECREF(values[j]);
            }
            return NULL;
        }
    }
    return build(event_type, event_slots, values, EVENT_FIELDS);
}

/* --- writing an event as JSON ------------------------------------------------------------ */

/* event_json writes exactly what orjson.dumps(sinks.jsonlines.event_to_dict(event)) does,
 * for the events it can: a plain AuditEvent whose text is all valid Unicode, a UTC
 * timestamp, ids within 64 bits. For anything else it answers None and the Python writer,
 * the reference, writes the line (tests/test_speedups.py compares the two). */

static int check_configured(void);

/* Output: in the struct itself while it fits, on the heap beyond. */
typedef struct {
    char *data;
    Py_ssize_t size, capacity;
    char local[1024];
} Buffer;

static void
buffer_init(Buffer *b)
{
    b->data = b->local;
    b->size = 0;
    b->capacity = (Py_ssize_t)sizeof(b->local);
}

static void
buffer_free(Buffer *b)
{
    if (b->data != b->local) {
        PyMem_Free(b->data);
    }
}

enum { WRITTEN = 0, DECLINED = 1, FAILED = -1 };

/* Room for ``size`` more bytes: the heap, twice what is needed, once the struct is full. */
static int
grow(Buffer *b, Py_ssize_t size)
{
    Py_ssize_t capacity = (b->capacity + size) * 2;
    char *data = PyMem_Malloc((size_t)capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return FAILED;
    }
    memcpy(data, b->data, (size_t)b->size);
    buffer_free(b);
    b->data = data;
    b->capacity = capacity;
    return WRITTEN;
}

/* Inline: most pieces are a few bytes of known size, which the compiler copies in place. */
static inline int
put(Buffer *b, const char *text, Py_ssize_t size)
{
    if (b->size + size > b->capacity && grow(b, size)) {
        return FAILED;
    }
    memcpy(b->data + b->size, text, (size_t)size);
    b->size += size;
    return WRITTEN;
}

/* ``width`` decimal digits of ``value`` (zero-padded), or all of them for width 0. */
static int
put_digits(Buffer *b, long long value, int width)
{
    char digits[24];
    int end = (int)sizeof(digits), start = end;
    unsigned long long rest = value < 0 ? 0ULL - (unsigned long long)value
                                        : (unsigned long long)value;
    do {
        digits[--start] = (char)('0' + rest % 10);
        rest /= 10;
    } while (rest || end - start < width);
    if (value < 0) {
        digits[--start] = '-';
    }
    return put(b, digits + start, end - start);
}

/* ``YYYY-MM-DDTHH:MM:SS`` of a datetime. */
static int
put_date_time(Buffer *b, PyObject *moment)
{
    return put_digits(b, PyDateTime_GET_YEAR(moment), 4) || put(b, "-", 1) ||
                   put_digits(b, PyDateTime_GET_MONTH(moment), 2) || put(b, "-", 1) ||
                   put_digits(b, PyDateTime_GET_DAY(moment), 2) || put(b, "T", 1) ||
                   put_digits(b, PyDateTime_DATE_GET_HOUR(moment), 2) || put(b, ":", 1) ||
                   put_digits(b, PyDateTime_DATE_GET_MINUTE(moment), 2) || put(b, ":", 1) ||
                   put_digits(b, PyDateTime_DATE_GET_SECOND(moment), 2)
               ? FAILED
               : WRITTEN;
}

/* --- BLAKE2b with a 16-byte digest (RFC 7693), as hashlib.blake2b(data, digest_size=16)
 * computes it: keys are this digest of the record, and calling hashlib for each event
 * cost more than the hashing itself. tests/test_speedups.py checks it against hashlib. */

static const uint64_t blake2b_iv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
    0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
    0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

/* The message schedule; rounds 10 and 11 use rows 0 and 1 again. */
static const uint8_t blake2b_sigma[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

static inline uint64_t
rotate_right(uint64_t x, int n)
{
    return (x >> n) | (x << (64 - n));
}

#define BLAKE2B_G(a, b, c, d, x, y)                                                            \
    do {                                                                                       \
        v[a] = v[a] + v[b] + (x);                                                              \
        v[d] = rotate_right(v[d] ^ v[a], 32);                                                  \
        v[c] = v[c] + v[d];                                                                    \
        v[b] = rotate_right(v[b] ^ v[c], 24);                                                  \
        v[a] = v[a] + v[b] + (y);                                                              \
        v[d] = rotate_right(v[d] ^ v[a], 16);                                                  \
        v[c] = v[c] + v[d];                                                                    \
        v[b] = rotate_right(v[b] ^ v[c], 63);                                                  \
    } while (0)

/* A little-endian word, in a form compilers turn into one load. */
static inline uint64_t
load64(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
           (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
           (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

/* A round with its schedule row known at compile time, so that the words stay in
 * registers: the twelve rounds are written out. */
#define BLAKE2B_ROUND(r)                                                                       \
    do {                                                                                       \
        const uint8_t *s = blake2b_sigma[(r) % 10];                                            \
        BLAKE2B_G(0, 4, 8, 12, m[s[0]], m[s[1]]);                                              \
        BLAKE2B_G(1, 5, 9, 13, m[s[2]], m[s[3]]);                                              \
        BLAKE2B_G(2, 6, 10, 14, m[s[4]], m[s[5]]);                                             \
        BLAKE2B_G(3, 7, 11, 15, m[s[6]], m[s[7]]);                                             \
        BLAKE2B_G(0, 5, 10, 15, m[s[8]], m[s[9]]);                                             \
        BLAKE2B_G(1, 6, 11, 12, m[s[10]], m[s[11]]);                                           \
        BLAKE2B_G(2, 7, 8, 13, m[s[12]], m[s[13]]);                                            \
        BLAKE2B_G(3, 4, 9, 14, m[s[14]], m[s[15]]);                                            \
    } while (0)

/* One 128-byte block into the state; ``counter`` is the bytes hashed so far, this block
 * included (inputs here are far below 2**64 bytes, so the counter's high word is 0). */
static void
blake2b_compress(uint64_t h[8], const unsigned char block[128], uint64_t counter, int last)
{
    uint64_t m[16], v[16];
    for (int i = 0; i < 16; i++) {
        m[i] = load64(block + 8 * i);
    }
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = blake2b_iv[i];
    }
    v[12] ^= counter;
    if (last) {
        v[14] = ~v[14];
    }
    BLAKE2B_ROUND(0);
    BLAKE2B_ROUND(1);
    BLAKE2B_ROUND(2);
    BLAKE2B_ROUND(3);
    BLAKE2B_ROUND(4);
    BLAKE2B_ROUND(5);
    BLAKE2B_ROUND(6);
    BLAKE2B_ROUND(7);
    BLAKE2B_ROUND(8);
    BLAKE2B_ROUND(9);
    BLAKE2B_ROUND(10);
    BLAKE2B_ROUND(11);
    for (int i = 0; i < 8; i++) {
        h[i] ^= v[i] ^ v[i + 8];
    }
}

/* The lowercase hex of the 16-byte BLAKE2b digest of ``data``, into ``hex``. */
static void
blake2b_128_hex(const char *data, Py_ssize_t size, char hex[32])
{
    uint64_t h[8];
    memcpy(h, blake2b_iv, sizeof(h));
    h[0] ^= 0x01010000ULL ^ 16; /* no key, 16-byte digest */
    const unsigned char *bytes = (const unsigned char *)data;
    uint64_t done = 0;
    while (size > 128) {
        done += 128;
        blake2b_compress(h, bytes, done, 0);
        bytes += 128;
        size -= 128;
    }
    unsigned char last[128] = {0};
    memcpy(last, bytes, (size_t)size);
    blake2b_compress(h, last, done + (uint64_t)size, 1);
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        unsigned char byte = (unsigned char)(h[i / 8] >> (8 * (i % 8)));
        hex[2 * i] = digits[byte >> 4];
        hex[2 * i + 1] = digits[byte & 15];
    }
}

#define PUT_LITERAL(b, text) put((b), (text), (Py_ssize_t)(sizeof(text) - 1))

/* The UTF-8 of a str, kept by the str itself: DECLINED for text with surrogates. */
static int
utf8(PyObject *value, const char **text, Py_ssize_t *size)
{
    *text = PyUnicode_AsUTF8AndSize(value, size);
    if (*text != NULL) {
        return WRITTEN;
    }
    if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
        return FAILED;
    }
    PyErr_Clear();
    return DECLINED;
}

/* A JSON string as orjson writes it: UTF-8, with only '"', '\\' and control characters
 * escaped (\b \t \n \f \r by name, the rest as \u00xx). Declines text with surrogates. */
static int
put_string(Buffer *b, PyObject *value)
{
    if (!PyUnicode_CheckExact(value)) {
        return DECLINED;
    }
    const char *text;
    Py_ssize_t size;
    int result = utf8(value, &text, &size);
    if (result != WRITTEN) {
        return result;
    }
    if (put(b, "\"", 1)) {
        return FAILED;
    }
    Py_ssize_t run = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        if (put(b, text + run, i - run)) {
            return FAILED;
        }
        run = i + 1;
        char escape[7] = {'\\', 0, 0, 0, 0, 0, 0};
        Py_ssize_t length = 2;
        switch (c) {
        case '"': escape[1] = '"'; break;
        case '\\': escape[1] = '\\'; break;
        case '\b': escape[1] = 'b'; break;
        case '\t': escape[1] = 't'; break;
        case '\n': escape[1] = 'n'; break;
        case '\f': escape[1] = 'f'; break;
        case '\r': escape[1] = 'r'; break;
        default:
            snprintf(escape + 1, 6, "u%04x", c);
            length = 6;
        }
        if (put(b, escape, length)) {
            return FAILED;
        }
    }
    if (put(b, text + run, size - run) || put(b, "\"", 1)) {
        return FAILED;
    }
    return WRITTEN;
}

static int
put_integer(Buffer *b, PyObject *value)
{
    if (!PyLong_CheckExact(value)) {
        return DECLINED;
    }
    int overflow;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow) {
        return DECLINED;
    }
    if (number == -1 && PyErr_Occurred()) {
        return FAILED;
    }
    return put_digits(b, number, 0);
}

static int
put_optional(Buffer *b, PyObject *value, int (*writer)(Buffer *, PyObject *))
{
    return value == Py_None ? PUT_LITERAL(b, "null") : writer(b, value);
}

/* A slot's value, a new reference; NULL with an exception for an unset slot. */
static PyObject *
slot_value(PyObject *slot, PyObject *instance)
{
    return Py_TYPE(slot)->tp_descr_get(slot, instance, (PyObject *)Py_TYPE(instance));
}

/* Text for the key's digest, UTF-8: DECLINED for text with surrogates (whose JSON the
 * Python writer writes anyway). */
static int
put_text(Buffer *b, PyObject *value)
{
    if (!PyUnicode_Check(value)) {
        return DECLINED;
    }
    const char *text;
    Py_ssize_t size;
    int result = utf8(value, &text, &size);
    return result == WRITTEN ? put(b, text, size) : result;
}

static int
put_repr(Buffer *b, PyObject *value)
{
    if (value == Py_None) {
        return PUT_LITERAL(b, "None");
    }
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (!overflow) {
            return put_digits(b, number, 0);
        }
    }
    if (PyUnicode_CheckExact(value) && PyUnicode_IS_ASCII(value)) {
        /* repr() of printable ASCII without a quote or a backslash: itself in quotes. */
        const char *text = (const char *)PyUnicode_DATA(value);
        Py_ssize_t size = PyUnicode_GET_LENGTH(value), i = 0;
        while (i < size && text[i] >= 0x20 && text[i] < 0x7f && text[i] != '\'' &&
               text[i] != '\\') {
            i++;
        }
        if (i == size) {
            return put(b, "'", 1) || put(b, text, size) || put(b, "'", 1) ? FAILED : WRITTEN;
        }
    }
    PyObject *text = PyObject_Repr(value);
    if (text == NULL) {
        return FAILED;
    }
    int result = put_text(b, text);
    Py_DECREF(text);
    return result;
}

/* The key of an event without a CloudWatch id, as AuditEvent.key makes it: BLAKE2b of the
 * record's fields -- the timestamp as ``isoformat()`` writes a UTC time -- joined by
 * U+001F, then U+001D and the repr of the place tuple where the origin knows any; its
 * hex digits into ``hex``. */
static int
digest_key(PyObject **fields, PyObject *origin, char hex[32])
{
    Buffer b;
    buffer_init(&b);
    /* fields: timestamp, serverhost, username, host, connection_id, query_id, operation,
     * database, object, retcode, connection_type, truncated (the event's slot order). */
    int result = put_text(&b, fields[1]);
    const int record[] = {0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    for (size_t n = 0; n < sizeof(record) / sizeof(record[0]) && result == WRITTEN; n++) {
        int i = record[n];
        PyObject *value = fields[i];
        result = put(&b, "\x1f", 1);
        if (result != WRITTEN) {
            break;
        }
        if (i == 0) {
            /* isoformat() of a UTC time: microseconds only when there are some. */
            int micros = PyDateTime_DATE_GET_MICROSECOND(value);
            result = put_date_time(&b, value) ||
                             (micros && (put(&b, ".", 1) || put_digits(&b, micros, 6))) ||
                             PUT_LITERAL(&b, "+00:00")
                         ? FAILED
                         : WRITTEN;
        }
        else if (i == 4 || i == 5 || (i == 9 && value != Py_None)) {
            result = put_repr(&b, value); /* str() of an exact int is its repr */
        }
        else if (i == 11) {
            result = value == Py_True ? PUT_LITERAL(&b, "truncated") : WRITTEN;
        }
        else if (value != Py_None) {
            result = put_text(&b, value);
        }
    }
    if (origin != Py_None && result == WRITTEN) {
        /* The place tuple: log_group, log_stream, shard_id, sequence_number, path,
         * line_number, and None where a dead letter has its event id. */
        static const int place_slots[6] = {0, 1, 3, 4, 5, 6};
        PyObject *values[6];
        int known = 0, got = 0;
        for (; got < 6; got++) {
            values[got] = slot_value(origin_slots[place_slots[got]], origin);
            if (values[got] == NULL) {
                result = FAILED;
                break;
            }
            known |= values[got] != Py_None;
        }
        if (result == WRITTEN && known) {
            result = put(&b, "\x1d(", 2);
            for (int i = 0; i < 6 && result == WRITTEN; i++) {
                result = put_repr(&b, values[i]);
                if (result == WRITTEN) {
                    result = PUT_LITERAL(&b, ", ");
                }
            }
            if (result == WRITTEN) {
                result = PUT_LITERAL(&b, "None)");
            }
        }
        for (int i = 0; i < got; i++) {
            Py_DECREF(values[i]);
        }
    }
    if (result == WRITTEN) {
        blake2b_128_hex(b.data, b.size, hex);
    }
    buffer_free(&b);
    return result;
}

/* A JSON member's name with its punctuation, and its length. */
typedef struct {
    const char *text;
    Py_ssize_t size;
} Name;
#define NAME(text) {(text), (Py_ssize_t)(sizeof(text) - 1)}

static const Name origin_names[ORIGIN_FIELDS] = {
    NAME("{\"log_group\":"),
    NAME(",\"log_stream\":"),
    NAME(",\"event_id\":"),
    NAME(",\"shard_id\":"),
    NAME(",\"sequence_number\":"),
    NAME(",\"path\":"),
    NAME(",\"line_number\":"),
};

static int
put_origin(Buffer *b, PyObject *origin)
{
    if (origin == Py_None) {
        return PUT_LITERAL(b, "null");
    }
    int result = WRITTEN;
    for (int i = 0; i < ORIGIN_FIELDS && result == WRITTEN; i++) {
        PyObject *value = slot_value(origin_slots[i], origin);
        if (value == NULL) {
            return FAILED;
        }
        result = put(b, origin_names[i].text, origin_names[i].size);
        if (result == WRITTEN) {
            result = put_optional(b, value, i == 6 ? put_integer : put_string);
        }
        Py_DECREF(value);
    }
    return result == WRITTEN ? put(b, "}", 1) : result;
}

static const Name event_names[EVENT_FIELDS] = {
    NAME(",\"timestamp\":"),
    NAME(",\"serverhost\":"),
    NAME(",\"username\":"),
    NAME(",\"host\":"),
    NAME(",\"connection_id\":"),
    NAME(",\"query_id\":"),
    NAME(",\"operation\":"),
    NAME(",\"database\":"),
    NAME(",\"object\":"),
    NAME(",\"retcode\":"),
    NAME(",\"connection_type\":"),
    NAME(",\"truncated\":"),
    NAME(",\"dialect\":"),
    NAME(",\"origin\":"),
    NAME(",\"prefix\":"),
    NAME(",\"suffix\":"),
};

/* The members in event_to_dict's order: the slots' order, but origin last. */
static const int member_order[EVENT_FIELDS] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 13};

static int
write_event(Buffer *b, PyObject **fields)
{
    PyObject *moment = fields[0], *origin = fields[13];
    if (!PyDateTime_CheckExact(moment) || !((_PyDateTime_BaseTZInfo *)moment)->hastzinfo ||
        PyDateTime_DATE_GET_TZINFO(moment) != utc || !is_dialect(fields[12]) ||
        (fields[11] != Py_True && fields[11] != Py_False) ||
        (origin != Py_None && Py_TYPE(origin) != origin_type)) {
        return DECLINED;
    }
    PyObject *event_id = NULL;
    if (origin != Py_None) {
        event_id = slot_value(origin_slots[2], origin);
        if (event_id == NULL) {
            return FAILED;
        }
        if (event_id != Py_None && !PyUnicode_CheckExact(event_id)) {
            Py_DECREF(event_id);
            return DECLINED;
        }
        if (event_id == Py_None || PyUnicode_GET_LENGTH(event_id) == 0) {
            Py_CLEAR(event_id);
        }
    }
    int result = PUT_LITERAL(b, "{\"key\":");
    if (result == WRITTEN && event_id != NULL) {
        result = put_string(b, event_id);
    }
    else if (result == WRITTEN) {
        char hex[32];
        result = digest_key(fields, origin, hex);
        if (result == WRITTEN) {
            result = put(b, "\"", 1) || put(b, hex, 32) || put(b, "\"", 1) ? FAILED : WRITTEN;
        }
    }
    Py_XDECREF(event_id);
    for (int n = 0; n < EVENT_FIELDS && result == WRITTEN; n++) {
        int i = member_order[n];
        result = put(b, event_names[i].text, event_names[i].size);
        if (result != WRITTEN) {
            break;
        }
        PyObject *value = fields[i];
        switch (i) {
        case 0:
            result = put(b, "\"", 1) || put_date_time(b, value) || put(b, ".", 1) ||
                             put_digits(b, PyDateTime_DATE_GET_MICROSECOND(value), 6) ||
                             PUT_LITERAL(b, "Z\"")
                         ? FAILED
                         : WRITTEN;
            break;
        case 4:
        case 5:
            result = put_integer(b, value);
            break;
        case 9:
            result = put_optional(b, value, put_integer);
            break;
        case 11:
            result = value == Py_True ? PUT_LITERAL(b, "true") : PUT_LITERAL(b, "false");
            break;
        case 12: {
            Py_ssize_t size;
            const char *text = PyUnicode_AsUTF8AndSize(value, &size);
            result = text == NULL ? FAILED : put(b, "\"", 1) || put(b, text, size) ||
                                                     put(b, "\"", 1)
                                                 ? FAILED
                                                 : WRITTEN;
            break;
        }
        case 13:
            result = put_origin(b, value);
            break;
        case 10:
        case 14:
        case 15:
            result = put_optional(b, value, put_string);
            break;
        default:
            result = put_string(b, value);
        }
    }
    return result == WRITTEN ? put(b, "}", 1) : result;
}

/* An event's JSON line, no newline, appended to ``b``: WRITTEN, or DECLINED where the
 * Python writer must write it (not our class, or a value this writer does not handle). */
static int
put_event(Buffer *b, PyObject *event)
{
    if (Py_TYPE(event) != event_type) {
        return DECLINED;
    }
    PyObject *fields[EVENT_FIELDS];
    for (int i = 0; i < EVENT_FIELDS; i++) {
        fields[i] = slot_value(event_slots[i], event);
        if (fields[i] == NULL) {
            for (int j = 0; j < i; j++) {
                Py_DECREF(fields[j]);
            }
            return FAILED;
        }
    }
    Py_ssize_t start = b->size;
    int result = write_event(b, fields);
    for (int i = 0; i < EVENT_FIELDS; i++) {
        Py_DECREF(fields[i]);
    }
    if (result != WRITTEN) {
        b->size = start;
    }
    return result;
}

/* What a writer returns, the buffer freed: its bytes once WRITTEN, None where DECLINED,
 * NULL with the exception once FAILED. */
static PyObject *
finish(Buffer *b, int result)
{
    PyObject *written = NULL;
    if (result == WRITTEN) {
        written = PyBytes_FromStringAndSize(b->data, b->size);
    }
    else if (result == DECLINED) {
        written = Py_NewRef(Py_None);
    }
    buffer_free(b);
    return written;
}

/* event_json(event) -> bytes | None: the event's JSON line (no newline), or None where
 * the Python writer must write it. */
static PyObject *
event_json(PyObject *module, PyObject *event)
{
    if (!check_configured()) {
        return NULL;
    }
    Buffer buffer;
    buffer_init(&buffer);
    return finish(&buffer, put_event(&buffer, event));
}

/* json_lines(events) -> bytes | None: the JSON Lines of a list of events, each line ended
 * by a newline, in one piece; None if any item is one the Python writer must write. */
static PyObject *
json_lines(PyObject *module, PyObject *events)
{
    if (!check_configured()) {
        return NULL;
    }
    if (!PyList_CheckExact(events)) {
        Py_RETURN_NONE;
    }
    Buffer buffer;
    buffer_init(&buffer);
    int result = WRITTEN;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(events) && result == WRITTEN; i++) {
        /* Held: reading a slot runs no Python code today, but the list is the caller's. */
        PyObject *event = Py_NewRef(PyList_GET_ITEM(events, i));
        result = put_event(&buffer, event);
        Py_DECREF(event);
        if (result == WRITTEN) {
            result = put(&buffer, "\n", 1);
        }
    }
    return finish(&buffer, result);
}

/* --- the module's functions --------------------------------------------------------------- */

static int
check_configured(void)
{
    if (event_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "auditsync._speedups is not configured");
        return 0;
    }
    return 1;
}

static PyObject *
parse_line(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "parse_line(text, dialect, tz, cache, origin)");
        return NULL;
    }
    if (!check_configured()) {
        return NULL;
    }
    if (!PyUnicode_Check(args[0]) || !PyDict_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "parse_line needs a str and a dict");
        return NULL;
    }
    return parse(args[0], args[1], args[2], args[3], args[4]);
}

/* One line and its origin -- ``fields`` with field ``slot`` set to ``value`` -- appended
 * to ``results``: the event, or the origin alone where the Python reader must read the
 * line. The caller holds ``text``. 0 on success, -1 with an exception set. */
static int
append_line(PyObject *results, Py_ssize_t *misses, PyObject *text, PyObject *fields, int slot,
            PyObject *value, PyObject *dialect, PyObject *tz, PyObject *cache)
{
    PyObject *values[ORIGIN_FIELDS];
    for (int j = 0; j < ORIGIN_FIELDS; j++) {
        values[j] = Py_NewRef(PyTuple_GET_ITEM(fields, j));
    }
    Py_SETREF(values[slot], Py_NewRef(value));
    PyObject *origin = build(origin_type, origin_slots, values, ORIGIN_FIELDS);
    PyObject *event = origin ? parse(text, dialect, tz, cache, origin) : NULL;
    if (event == Py_None) {
        Py_SETREF(event, Py_NewRef(origin));
        (*misses)++;
    }
    Py_XDECREF(origin);
    if (event == NULL) {
        return -1;
    }
    int failed = PyList_Append(results, event);
    Py_DECREF(event);
    return failed;
}

static int
origin_fields_ok(PyObject *fields, PyObject *cache)
{
    return PyTuple_CheckExact(fields) && PyTuple_GET_SIZE(fields) == ORIGIN_FIELDS &&
           PyDict_Check(cache);
}

/* The log events of a data message: ``(results, misses)``, a result per item -- its event,
 * or its Origin alone where the Python reader must read the message, ``misses`` times.
 * None if an item is not a well-formed log event: the envelope's reader names the fault. */
static PyObject *
read_log_events(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "read_log_events(items, origin_fields, dialect, tz, cache)");
        return NULL;
    }
    if (!check_configured()) {
        return NULL;
    }
    PyObject *items = args[0], *fields = args[1], *dialect = args[2], *tz = args[3];
    PyObject *cache = args[4];
    if (!PyList_CheckExact(items) || !origin_fields_ok(fields, cache)) {
        Py_RETURN_NONE;
    }
    PyObject *results = PyList_New(0);
    if (results == NULL) {
        return NULL;
    }
    Py_ssize_t misses = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        /* Every reference is held: a lookup can run Python code (a key's __eq__), and so
         * can a time zone while the line is read; either could change the items. */
        PyObject *item = Py_NewRef(PyList_GET_ITEM(items, i));
        PyObject *id = NULL, *stamp = NULL, *message = NULL;
        if (PyDict_CheckExact(item)) {
            id = Py_XNewRef(PyDict_GetItemWithError(item, key_id));
            stamp = id ? Py_XNewRef(PyDict_GetItemWithError(item, key_timestamp)) : NULL;
            message = stamp ? Py_XNewRef(PyDict_GetItemWithError(item, key_message)) : NULL;
        }
        int well_formed = message != NULL && PyUnicode_CheckExact(id) &&
                          PyLong_CheckExact(stamp) && PyUnicode_CheckExact(message);
        Py_DECREF(item);
        Py_XDECREF(stamp);
        if (!well_formed) {
            Py_XDECREF(id);
            Py_XDECREF(message);
            Py_DECREF(results);
            if (PyErr_Occurred()) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
        int failed = append_line(results, &misses, message, fields, 2, id, dialect, tz, cache);
        Py_DECREF(id);
        Py_DECREF(message);
        if (failed) {
            Py_DECREF(results);
            return NULL;
        }
    }
    return Py_BuildValue("(Nn)", results, misses);
}

/* Lines of a file (str, or bytes read as UTF-8 with surrogateescape), each with its line
 * number: ``(results, misses)`` as read_log_events gives. None if ``texts`` holds
 * something else: the Python reader then says what. */
static PyObject *
read_lines(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "read_lines(texts, numbers, origin_fields, dialect, tz, cache)");
        return NULL;
    }
    if (!check_configured()) {
        return NULL;
    }
    PyObject *texts = args[0], *numbers = args[1], *fields = args[2], *dialect = args[3];
    PyObject *tz = args[4], *cache = args[5];
    if (!PyList_CheckExact(texts) || !PyList_CheckExact(numbers) ||
        PyList_GET_SIZE(texts) != PyList_GET_SIZE(numbers) || !origin_fields_ok(fields, cache)) {
        Py_RETURN_NONE;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(texts); i++) {
        PyObject *item = PyList_GET_ITEM(texts, i);
        if (!PyBytes_Check(item) && !PyUnicode_Check(item)) {
            Py_RETURN_NONE;
        }
    }
    PyObject *results = PyList_New(0);
    if (results == NULL) {
        return NULL;
    }
    Py_ssize_t misses = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(texts) && i < PyList_GET_SIZE(numbers); i++) {
        PyObject *item = PyList_GET_ITEM(texts, i);
        PyObject *text;
        if (PyBytes_Check(item)) {
            text = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item),
                                        "surrogateescape");
        }
        else if (PyUnicode_Check(item)) {
            text = Py_NewRef(item);
        }
        else {
            PyErr_SetString(PyExc_TypeError, "read_lines: the list of lines changed");
            text = NULL;
        }
        if (text == NULL) {
            Py_DECREF(results);
            return NULL;
        }
        PyObject *number = Py_NewRef(PyList_GET_ITEM(numbers, i));
        int failed = append_line(results, &misses, text, fields, 6, number, dialect, tz, cache);
        Py_DECREF(number);
        Py_DECREF(text);
        if (failed) {
            Py_DECREF(results);
            return NULL;
        }
    }
    return Py_BuildValue("(Nn)", results, misses);
}

/* blake2b_128(data) -> str: the digest keys use, exposed so that tests can hold it
 * against hashlib. */
static PyObject *
blake2b_128(PyObject *module, PyObject *data)
{
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "blake2b_128 needs bytes");
        return NULL;
    }
    char hex[32];
    blake2b_128_hex(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), hex);
    return PyUnicode_FromStringAndSize(hex, 32);
}

static int
member_descriptors_ok(PyObject *sequence, int count, const char *what)
{
    if (!PyTuple_Check(sequence) || PyTuple_GET_SIZE(sequence) != count) {
        PyErr_Format(PyExc_TypeError, "%s: expected a tuple of %d member descriptors", what,
                     count);
        return 0;
    }
    for (int i = 0; i < count; i++) {
        PyObject *slot = PyTuple_GET_ITEM(sequence, i);
        if (Py_TYPE(slot)->tp_descr_set == NULL) {
            PyErr_Format(PyExc_TypeError, "%s: item %d is not a data descriptor", what, i);
            return 0;
        }
    }
    return 1;
}

static void
keep_descriptors(PyObject *sequence, PyObject **slots, int count)
{
    for (int i = 0; i < count; i++) {
        Py_XSETREF(slots[i], Py_NewRef(PyTuple_GET_ITEM(sequence, i)));
    }
}

static PyObject *
configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !PyType_Check(args[0]) || !PyType_Check(args[2]) ||
        !PyTuple_Check(args[4]) || PyTuple_GET_SIZE(args[4]) != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "configure(event_type, event_slots, origin_type, origin_slots, "
                        "(auto, mariadb, aurora, rds_mysql), utc)");
        return NULL;
    }
    if (!member_descriptors_ok(args[1], EVENT_FIELDS, "event slots") ||
        !member_descriptors_ok(args[3], ORIGIN_FIELDS, "origin slots")) {
        return NULL;
    }
    keep_descriptors(args[1], event_slots, EVENT_FIELDS);
    keep_descriptors(args[3], origin_slots, ORIGIN_FIELDS);
    Py_XSETREF(event_type, (PyTypeObject *)Py_NewRef(args[0]));
    Py_XSETREF(origin_type, (PyTypeObject *)Py_NewRef(args[2]));
    PyObject *dialects = args[4];
    Py_XSETREF(dialect_auto, Py_NewRef(PyTuple_GET_ITEM(dialects, 0)));
    Py_XSETREF(dialect_mariadb, Py_NewRef(PyTuple_GET_ITEM(dialects, 1)));
    Py_XSETREF(dialect_aurora, Py_NewRef(PyTuple_GET_ITEM(dialects, 2)));
    Py_XSETREF(dialect_rds, Py_NewRef(PyTuple_GET_ITEM(dialects, 3)));
    Py_XSETREF(utc, Py_NewRef(args[5]));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL,
     "Hand over the event and origin classes, their slots, the dialects and UTC."},
    {"parse_line", (PyCFunction)(void (*)(void))parse_line, METH_FASTCALL,
     "parse_line(text, dialect, tz, cache, origin) -> AuditEvent | None"},
    {"read_log_events", (PyCFunction)(void (*)(void))read_log_events, METH_FASTCALL,
     "read_log_events(items, origin_fields, dialect, tz, cache) -> (list, int) | None"},
    {"read_lines", (PyCFunction)(void (*)(void))read_lines, METH_FASTCALL,
     "read_lines(texts, numbers, origin_fields, dialect, tz, cache) -> (list, int) | None"},
    {"event_json", (PyCFunction)event_json, METH_O,
     "event_json(event) -> bytes | None: the event's JSON line, as the Python writer's"},
    {"json_lines", (PyCFunction)json_lines, METH_O,
     "json_lines(events) -> bytes | None: the events' JSON Lines, as the Python writer's"},
    {"blake2b_128", (PyCFunction)blake2b_128, METH_O,
     "blake2b_128(data) -> str: hashlib.blake2b(data, digest_size=16).hexdigest(), for tests"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT, "auditsync._speedups",
    "The common server_audit line shapes at C speed; see auditsync/_auditlog.py.", -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < OPERATIONS; i++) {
        operation_strings[i] = PyUnicode_InternFromString(operation_names[i]);
        if (operation_strings[i] == NULL) {
            return NULL;
        }
    }
    key_id = PyUnicode_InternFromString("id");
    key_timestamp = PyUnicode_InternFromString("timestamp");
    key_message = PyUnicode_InternFromString("message");
    astimezone_name = PyUnicode_InternFromString("astimezone");
    if (!key_id || !key_timestamp || !key_message || !astimezone_name) {
        return NULL;
    }
    return PyModule_Create(&module_definition);
}
