/*
 * auditsync._c_reader: the common server_audit line shapes at C speed.
 *
 * The grammar lives in _auditlog.py; this file reads only the shapes servers write every
 * second -- the MariaDB/RDS date form and the Aurora epoch, names without commas, the
 * standard QUERY, table and connection tails -- and answers None for anything else, so
 * that the Python reader, the reference, decides every unusual line and every error.
 * Whatever this file returns must equal what auditlog._parse_text returns for the same
 * line (tests/test_speedups.py checks it, field by field).
 *
 * Events and origins are the library's own attrs classes, built as their attrs __init__
 * builds them -- each field set through its slot's descriptor, as object.__setattr__ sets
 * it, the frozen __setattr__ bypassed -- without the Python calls. The fields it reads
 * are READ_FIELDS; every other field of the event takes the default auditsync/_native.py
 * hands over from the event's table, which it also checks READ_FIELDS against.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>

#define MAX_FIELDS 64

/* The event's fields this reader reads, in the order of its values. */
static const char *const read_fields[] = {
    "timestamp", "serverhost", "username", "host", "connection_id", "query_id", "operation",
    "database",  "object",     "retcode",  "connection_type",       "dialect",  "origin",
    "prefix",
};
enum {
    TIMESTAMP, SERVERHOST, USERNAME, HOST, CONNECTION_ID, QUERY_ID, OPERATION, DATABASE, OBJECT,
    RETCODE, CONNECTION_TYPE, DIALECT, ORIGIN, PREFIX, READ_FIELDS
};
static PyObject *read_names[READ_FIELDS];

/* A field's slot: its member descriptor and the descriptor's __set__, reached through
 * PyType_GetSlot -- what object.__setattr__ calls once it has found the descriptor. */
typedef struct {
    PyObject *descriptor;
    descrsetfunc set;
} Slot;

/* A class this reader builds: the slots it sets from values, then those it sets to
 * their defaults. */
typedef struct {
    PyTypeObject *type;
    allocfunc alloc;
    Py_ssize_t count, defaults;
    Slot slots[MAX_FIELDS], default_slots[MAX_FIELDS];
    PyObject *default_values[MAX_FIELDS];
} Class;

/* Set once by configure(); owned references. */
static PyTypeObject *event_type = NULL;
static Class event_class, origin_class;
static Py_ssize_t origin_fields_count = 0, origin_event_id = -1, origin_line_number = -1;
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

/* Date-form stamps already read: a second's lines share one datetime. Each slot holds the
 * last stamp (its fourteen digits, its zone) that fell in it, so looking one up costs a
 * few integer operations, where a dict would have a key made and hashed for every line. */
#define DATE_SLOTS 512
static struct {
    long long digits;
    PyObject *tz, *moment; /* strong references; NULL in an empty slot */
} date_slots[DATE_SLOTS];

/* ``YYYYMMDD HH:MM:SS`` in tz, as UTC. New reference; NULL with no exception set for a
 * stamp the Python reader must judge. */
static PyObject *
date_time(const Text *t, PyObject *tz)
{
    long long digits = 0;
    static const int starts[] = {0, 2, 4, 6, 9, 12, 15};
    for (int i = 0; i < 7; i++) {
        digits = digits * 100 + two(t, starts[i]);
    }
    unsigned long long mixed = (unsigned long long)digits ^ ((uintptr_t)tz >> 4);
    size_t slot = (size_t)((mixed ^ (mixed >> 9)) % DATE_SLOTS);
    if (date_slots[slot].moment != NULL && date_slots[slot].digits == digits &&
        date_slots[slot].tz == tz) {
        return Py_NewRef(date_slots[slot].moment);
    }
    PyObject *moment = PyDateTimeAPI->DateTime_FromDateAndTime(
        two(t, 0) * 100 + two(t, 2), two(t, 4), two(t, 6), two(t, 9), two(t, 12), two(t, 15),
        0, tz, PyDateTimeAPI->DateTimeType);
    if (moment != NULL && tz != utc) {
        Py_SETREF(moment, PyObject_CallMethodOneArg(moment, astimezone_name, utc));
    }
    if (moment == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ValueError) ||
            PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
        }
        return NULL;
    }
    date_slots[slot].digits = digits;
    Py_XSETREF(date_slots[slot].tz, Py_NewRef(tz));
    Py_XSETREF(date_slots[slot].moment, Py_NewRef(moment));
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
 * (a PROXY_CONNECT's proxied user, after ",`", is left to the Python reader). A
 * connection's status is never empty: a record that ends ``,`` there is MariaDB
 * Enterprise 12.3's eleven fields (an empty TLS version) or no record, and the Python
 * reader decides which (``connection``). */
static int
names_and_status(PyObject *line, const Text *t, Py_ssize_t start, Py_ssize_t end, int proxy,
                 int connection, Tail *tail)
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
    if (empty_status && connection) {
        return 0;
    }
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
    int found = names_and_status(line, t, start, body, proxy, 1, tail);
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
    return names_and_status(line, t, start, t->length, 0, 0, tail);
}

/* --- building instances ------------------------------------------------------------------ */

static int
is_dialect(PyObject *value)
{
    return value == dialect_auto || value == dialect_mariadb || value == dialect_aurora ||
           value == dialect_rds;
}

/* A new instance of ``c``, its slots set from ``values`` (references stolen, all of
 * them, also on failure), then its defaults.
 *
 * An instance that holds only values the collector does not track (str, int, datetime,
 * None, an origin built here) or a Dialect member cannot be part of a reference cycle,
 * so it is untracked, as CPython untracks such tuples and dicts: the collector then
 * never walks the thousands of events a batch holds. */
static PyObject *
build(const Class *c, PyObject **values)
{
    PyObject *instance = c->alloc(c->type, 0);
    Py_ssize_t i = 0;
    int acyclic = 1;
    if (instance != NULL) {
        for (; i < c->count; i++) {
            if (acyclic && PyObject_GC_IsTracked(values[i]) && !is_dialect(values[i])) {
                acyclic = 0;
            }
            const Slot *slot = &c->slots[i];
            int failed = slot->set(slot->descriptor, instance, values[i]);
            Py_DECREF(values[i]);
            if (failed) {
                Py_CLEAR(instance);
                i++;
                break;
            }
        }
    }
    for (; i < c->count; i++) {
        Py_DECREF(values[i]);
    }
    for (Py_ssize_t j = 0; instance != NULL && j < c->defaults; j++) {
        PyObject *value = c->default_values[j];
        if (acyclic && PyObject_GC_IsTracked(value) && !is_dialect(value)) {
            acyclic = 0;
        }
        const Slot *slot = &c->default_slots[j];
        if (slot->set(slot->descriptor, instance, value)) {
            Py_CLEAR(instance);
        }
    }
    if (instance != NULL && acyclic) {
        PyObject_GC_UnTrack(instance);
    }
    return instance;
}

/* The event for ``line``, or None (a new reference to it) when the Python reader must
 * read it, or NULL with an exception set. */
static PyObject *
parse(PyObject *line, PyObject *dialect, PyObject *tz, PyObject *origin)
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
        timestamp = epoch ? epoch_time(t, 16) : date_time(t, tz);
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
    PyObject *values[READ_FIELDS] = {
        [TIMESTAMP] = timestamp,
        [SERVERHOST] = PyUnicode_Substring(line, stamp_end + 1, commas[0]),
        [USERNAME] = PyUnicode_Substring(line, commas[0] + 1, commas[1]),
        [HOST] = PyUnicode_Substring(line, commas[1] + 1, commas[2]),
        [CONNECTION_ID] = connection_id,
        [QUERY_ID] = query_id,
        [OPERATION] = Py_NewRef(operation),
        [DATABASE] = tail.database,
        [OBJECT] = tail.object,
        [RETCODE] = tail.retcode,
        [CONNECTION_TYPE] = tail.connection_type ? tail.connection_type : Py_NewRef(Py_None),
        [DIALECT] = Py_NewRef(resolved),
        [ORIGIN] = Py_NewRef(origin),
        [PREFIX] = prefix,
    };
    for (int i = 0; i < READ_FIELDS; i++) {
        if (values[i] == NULL) {
            for (int j = 0; j < READ_FIELDS; j++) {
                Py_XDECREF(values[j]);
            }
            return NULL;
        }
    }
    return build(&event_class, values);
}

/* --- the module's functions --------------------------------------------------------------- */

static int
check_configured(void)
{
    if (event_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "auditsync._c_reader is not configured");
        return 0;
    }
    return 1;
}

static PyObject *
parse_line(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "parse_line(text, dialect, tz, origin)");
        return NULL;
    }
    if (!check_configured()) {
        return NULL;
    }
    if (!PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "parse_line needs a str");
        return NULL;
    }
    return parse(args[0], args[1], args[2], args[3]);
}

/* One line and its origin -- ``fields`` with field ``slot`` set to ``value`` -- appended
 * to ``results``: the event, or the origin alone where the Python reader must read the
 * line. The caller holds ``text``. 0 on success, -1 with an exception set. */
static int
append_line(PyObject *results, Py_ssize_t *misses, PyObject *text, PyObject *fields,
            Py_ssize_t slot,
            PyObject *value, PyObject *dialect, PyObject *tz)
{
    PyObject *values[MAX_FIELDS];
    for (Py_ssize_t j = 0; j < origin_fields_count; j++) {
        values[j] = Py_NewRef(PyTuple_GET_ITEM(fields, j));
    }
    Py_SETREF(values[slot], Py_NewRef(value));
    PyObject *origin = build(&origin_class, values);
    PyObject *event = origin ? parse(text, dialect, tz, origin) : NULL;
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
origin_fields_ok(PyObject *fields)
{
    return PyTuple_CheckExact(fields) && PyTuple_GET_SIZE(fields) == origin_fields_count;
}

/* The log events of a data message: ``(results, misses)``, a result per item -- its event,
 * or its Origin alone where the Python reader must read the message, ``misses`` times.
 * None if an item is not a well-formed log event: the envelope's reader names the fault. */
static PyObject *
read_log_events(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "read_log_events(items, origin_fields, dialect, tz)");
        return NULL;
    }
    if (!check_configured()) {
        return NULL;
    }
    PyObject *items = args[0], *fields = args[1], *dialect = args[2], *tz = args[3];
    if (!PyList_CheckExact(items) || !origin_fields_ok(fields)) {
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
        int failed = append_line(results, &misses, message, fields, origin_event_id, id, dialect, tz);
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
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "read_lines(texts, numbers, origin_fields, dialect, tz)");
        return NULL;
    }
    if (!check_configured()) {
        return NULL;
    }
    PyObject *texts = args[0], *numbers = args[1], *fields = args[2], *dialect = args[3];
    PyObject *tz = args[4];
    if (!PyList_CheckExact(texts) || !PyList_CheckExact(numbers) ||
        PyList_GET_SIZE(texts) != PyList_GET_SIZE(numbers) || !origin_fields_ok(fields)) {
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
        int failed = append_line(results, &misses, text, fields, origin_line_number, number, dialect, tz);
        Py_DECREF(number);
        Py_DECREF(text);
        if (failed) {
            Py_DECREF(results);
            return NULL;
        }
    }
    return Py_BuildValue("(Nn)", results, misses);
}

/* ``slot`` for the field ``name`` of ``type``: a member descriptor (a slot of an attrs
 * class with slots), which runs no Python code. 0, or -1 with an exception. */
static int
take_slot(PyTypeObject *type, PyObject *name, Slot *slot)
{
    PyObject *descriptor = PyObject_GetAttr((PyObject *)type, name);
    if (descriptor == NULL) {
        return -1;
    }
    if (Py_TYPE(descriptor) != &PyMemberDescr_Type) {
        PyErr_Format(PyExc_TypeError, "configure: %R.%U is not a slot", type, name);
        Py_DECREF(descriptor);
        return -1;
    }
    Py_XSETREF(slot->descriptor, descriptor);
    slot->set = (descrsetfunc)PyType_GetSlot(Py_TYPE(descriptor), Py_tp_descr_set);
    return 0;
}

/* ``c`` for ``type``: the slots of ``names`` (a tuple of str, or an array of
 * ``count``), then those of ``defaults``, ``((name, value), ...)``. 0, or -1 with an
 * exception. */
static int
take_class(Class *c, PyObject *type, PyObject *const *names, Py_ssize_t count,
           PyObject *defaults)
{
    Py_ssize_t more = defaults == NULL ? 0 : PyTuple_GET_SIZE(defaults);
    if (!PyType_Check(type) || count > MAX_FIELDS || more > MAX_FIELDS) {
        PyErr_SetString(PyExc_TypeError, "configure: a class of at most 64 fields");
        return -1;
    }
    c->count = c->defaults = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!PyUnicode_Check(names[i]) ||
            take_slot((PyTypeObject *)type, names[i], &c->slots[i])) {
            PyErr_SetString(PyExc_TypeError, "configure: a field that is not a slot");
            return -1;
        }
    }
    for (Py_ssize_t i = 0; i < more; i++) {
        PyObject *pair = PyTuple_GET_ITEM(defaults, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0)) ||
            take_slot((PyTypeObject *)type, PyTuple_GET_ITEM(pair, 0), &c->default_slots[i])) {
            PyErr_SetString(PyExc_TypeError, "configure: defaults are (slot, value) pairs");
            return -1;
        }
        Py_XSETREF(c->default_values[i], Py_NewRef(PyTuple_GET_ITEM(pair, 1)));
    }
    Py_XSETREF(c->type, (PyTypeObject *)Py_NewRef(type));
    c->alloc = (allocfunc)PyType_GetSlot(c->type, Py_tp_alloc);
    c->count = count;
    c->defaults = more;
    return 0;
}

/* The position of ``name`` in the tuple of str ``names``, or -1 with an exception. */
static Py_ssize_t
position(PyObject *names, const char *name)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        PyObject *item = PyTuple_GET_ITEM(names, i);
        if (PyUnicode_Check(item) && PyUnicode_CompareWithASCIIString(item, name) == 0) {
            return i;
        }
    }
    PyErr_Format(PyExc_TypeError, "configure: the origin has no field %s", name);
    return -1;
}

static PyObject *
configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !PyTuple_CheckExact(args[1]) || !PyTuple_CheckExact(args[3]) ||
        !PyTuple_Check(args[4]) || PyTuple_GET_SIZE(args[4]) != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "configure(event_type, ((name, default), ...), origin_type, "
                        "origin_fields, (auto, mariadb, aurora, rds_mysql), utc)");
        return NULL;
    }
    PyObject *origin_names = args[3];
    Py_ssize_t event_id = position(origin_names, "event_id");
    Py_ssize_t line_number = event_id == -1 ? -1 : position(origin_names, "line_number");
    if (line_number == -1 ||
        take_class(&event_class, args[0], read_names, READ_FIELDS, args[1]) ||
        take_class(&origin_class, args[2], &PyTuple_GET_ITEM(origin_names, 0),
                   PyTuple_GET_SIZE(origin_names), NULL)) {
        event_type = NULL;
        return NULL;
    }
    origin_fields_count = PyTuple_GET_SIZE(origin_names);
    origin_event_id = event_id;
    origin_line_number = line_number;
    event_type = event_class.type;
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
     "Hand over the event class and the defaults of the fields not read, the origin class "
     "and its fields, the dialects and UTC."},
    {"parse_line", (PyCFunction)(void (*)(void))parse_line, METH_FASTCALL,
     "parse_line(text, dialect, tz, origin) -> AuditEvent | None"},
    {"read_log_events", (PyCFunction)(void (*)(void))read_log_events, METH_FASTCALL,
     "read_log_events(items, origin_fields, dialect, tz) -> (list, int) | None"},
    {"read_lines", (PyCFunction)(void (*)(void))read_lines, METH_FASTCALL,
     "read_lines(texts, numbers, origin_fields, dialect, tz) -> (list, int) | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT, "auditsync._c_reader",
    "The common server_audit line shapes at C speed; see auditsync/_auditlog.py.", -1, methods,
};

PyMODINIT_FUNC
PyInit__c_reader(void)
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
    for (int i = 0; i < READ_FIELDS; i++) {
        read_names[i] = PyUnicode_InternFromString(read_fields[i]);
        if (read_names[i] == NULL) {
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
    PyObject *module = PyModule_Create(&module_definition);
    PyObject *fields = module ? PyTuple_New(READ_FIELDS) : NULL;
    if (fields == NULL) {
        Py_XDECREF(module);
        return NULL;
    }
    for (int i = 0; i < READ_FIELDS; i++) {
        PyTuple_SET_ITEM(fields, i, Py_NewRef(read_names[i]));
    }
    /* The fields read, for auditsync/_native.py to hold against the event's table. */
    if (PyModule_AddObject(module, "READ_FIELDS", fields)) {
        Py_DECREF(fields);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
