/*
 * auditsync._c_json: the JSON form of events, at C speed.
 *
 * It writes exactly what orjson.dumps(_json.event_to_dict(event)) does, for
 * the events it can: a plain AuditEvent whose text is all valid Unicode, a UTC timestamp,
 * ids within 64 bits. For anything else it answers None and the Python writer, the
 * reference, writes the line (tests/test_speedups.py compares the two, and
 * _json.py tries a few events when it configures this module).
 *
 * What it writes follows the event's table in Python (auditsync/_events.py), handed over
 * by configure(): the members in their order, each with its Form; the origin's; the
 * origin's derived members (what its log group names, written after its fields), which
 * it asks Python for once per log group; the fields of the key's record and the
 * origin's fields of its place. Each Form is written
 * one way here, as event_to_dict writes it, and the key's text as AuditEvent.key makes
 * it; the digest is hashlib's.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>

#define MAX_FIELDS 64

/* The forms of auditsync._events.Form, by number. */
enum { TEXT = 1, OPTIONAL_TEXT, INTEGER, OPTIONAL_INTEGER, FLAG, TIMESTAMP, DIALECT, ORIGIN };
static const char *const form_names[] = {
    "TEXT", "OPTIONAL_TEXT", "INTEGER", "OPTIONAL_INTEGER", "FLAG", "TIMESTAMP", "DIALECT",
    "ORIGIN",
};
#define FORMS (sizeof(form_names) / sizeof(form_names[0]))

/* A class's fields as this writer uses them: read in the table's order, each through its
 * slot's descriptor (its __get__, reached through PyType_GetSlot: what attribute access
 * calls once it has found the descriptor), each name with the JSON member's punctuation
 * before it. */
typedef struct {
    PyTypeObject *type;
    Py_ssize_t count;
    PyObject *names[MAX_FIELDS];       /* str, owned */
    PyObject *descriptors[MAX_FIELDS]; /* member descriptors, owned */
    descrgetfunc get[MAX_FIELDS];
    int forms[MAX_FIELDS];
    PyObject *members[MAX_FIELDS]; /* bytes: ``,"name":``; owned */
    int order[MAX_FIELDS];         /* the members' order, as positions in names */
} Fields;

/* Set once by configure(). */
static Fields event_fields, origin_fields, derived_fields;
static PyTypeObject *event_type = NULL, *origin_type = NULL; /* the fields' types */
static int key_record[MAX_FIELDS], key_record_size; /* positions in event_fields */
static int key_place[MAX_FIELDS], key_place_size;   /* positions in origin_fields */
static int origin_at = -1, event_id_at = -1;         /* the origin; the origin's event id */
/* The derived members: derive(value of the origin's field at derived_from_at) gives an
 * instance of derived_fields.type. Its values for None, and for the last value asked. */
static PyObject *derive = NULL;
static int derived_from_at = -1;
static PyObject *none_derived[MAX_FIELDS], *last_source = NULL, *last_derived[MAX_FIELDS];
static PyObject *dialects[4], *utc, *hash_copy, *hash_update, *hash_digest;

enum { WRITTEN = 0, DECLINED = 1, FAILED = -1 };

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


/* An optional value: ``null``, or the writer's. */
static int
put_optional(Buffer *b, PyObject *value, int (*writer)(Buffer *, PyObject *))
{
    return value == Py_None ? PUT_LITERAL(b, "null") : writer(b, value);
}

static int
is_dialect(PyObject *value)
{
    return value == dialects[0] || value == dialects[1] || value == dialects[2] ||
           value == dialects[3];
}

static int
is_utc_datetime(PyObject *value)
{
    return PyDateTime_CheckExact(value) && PyDateTime_DATE_GET_TZINFO(value) == utc;
}

/* ``"2024-01-31T14:02:07.000000Z"``, as iso_timestamp writes a UTC time. */
static int
put_timestamp(Buffer *b, PyObject *moment)
{
    if (!is_utc_datetime(moment)) {
        return DECLINED;
    }
    return put(b, "\"", 1) || put_date_time(b, moment) || put(b, ".", 1) ||
                   put_digits(b, PyDateTime_DATE_GET_MICROSECOND(moment), 6) ||
                   PUT_LITERAL(b, "Z\"")
               ? FAILED
               : WRITTEN;
}

/* The value of a dialect, a StrEnum member: the str it is. */
static int
put_dialect(Buffer *b, PyObject *value)
{
    if (!is_dialect(value)) {
        return DECLINED;
    }
    Py_ssize_t size;
    const char *text = PyUnicode_AsUTF8AndSize(value, &size);
    return text == NULL || put(b, "\"", 1) || put(b, text, size) || put(b, "\"", 1) ? FAILED
                                                                                   : WRITTEN;
}

/* The values of an instance's fields, new references, in ``fields``' order; 0, or -1
 * with an exception (the references taken so far released). */
static int
read_values(PyObject *instance, const Fields *fields, PyObject **values)
{
    for (Py_ssize_t i = 0; i < fields->count; i++) {
        values[i] = fields->get[i](fields->descriptors[i], instance, (PyObject *)fields->type);
        if (values[i] == NULL) {
            for (Py_ssize_t j = 0; j < i; j++) {
                Py_DECREF(values[j]);
            }
            return -1;
        }
    }
    return 0;
}

static void
release_values(const Fields *fields, PyObject **values)
{
    for (Py_ssize_t i = 0; i < fields->count; i++) {
        Py_DECREF(values[i]);
    }
}

static int put_members(Buffer *b, const Fields *fields, PyObject **values,
                       PyObject **origin_values, const char *first);

/* The derived members' values for the origin field's value ``source``, borrowed: those
 * for None, and for the last value asked, are kept, so the command line (no log group)
 * never calls Python and a batch (one or two log groups) calls it once per log group,
 * or per run of events of one. NULL with an exception, or with none where the values
 * are not an instance of the table's class (DECLINED). */
static PyObject **
derived_values(PyObject *source)
{
    if (source == Py_None) {
        return none_derived;
    }
    if (source == last_source) {
        return last_derived;
    }
    if (last_source != NULL && PyUnicode_CheckExact(source) && PyUnicode_CheckExact(last_source) &&
        PyUnicode_Compare(source, last_source) == 0) {
        Py_SETREF(last_source, Py_NewRef(source));
        return last_derived;
    }
    PyObject *derived = PyObject_CallOneArg(derive, source);
    if (derived == NULL) {
        return NULL;
    }
    PyObject *values[MAX_FIELDS];
    int taken = Py_TYPE(derived) == derived_fields.type &&
                read_values(derived, &derived_fields, values) == 0;
    Py_DECREF(derived);
    if (!taken) {
        return NULL;
    }
    if (last_source != NULL) {
        release_values(&derived_fields, last_derived);
    }
    memcpy(last_derived, values, sizeof(PyObject *) * (size_t)derived_fields.count);
    Py_XSETREF(last_source, Py_NewRef(source));
    return last_derived;
}

/* The origin, its fields' values read: an object of its members and its derived
 * members, or null. */
static int
put_origin(Buffer *b, PyObject **origin_values)
{
    if (origin_values == NULL) {
        return PUT_LITERAL(b, "null");
    }
    int result = put_members(b, &origin_fields, origin_values, NULL, "{");
    if (result == WRITTEN && derived_fields.count) {
        PyObject **derived = derived_values(origin_values[derived_from_at]);
        if (derived == NULL) {
            return PyErr_Occurred() ? FAILED : DECLINED;
        }
        result = put_members(b, &derived_fields, derived, NULL, NULL);
    }
    return result == WRITTEN ? put(b, "}", 1) : result;
}

/* A value of ``form`` as its JSON member's value; an origin's are ``origin_values``. */
static int
put_value(Buffer *b, int form, PyObject *value, PyObject **origin_values)
{
    switch (form) {
    case TEXT: return put_string(b, value);
    case OPTIONAL_TEXT: return put_optional(b, value, put_string);
    case INTEGER: return put_integer(b, value);
    case OPTIONAL_INTEGER: return put_optional(b, value, put_integer);
    case FLAG:
        if (value != Py_True && value != Py_False) {
            return DECLINED;
        }
        return value == Py_True ? PUT_LITERAL(b, "true") : PUT_LITERAL(b, "false");
    case TIMESTAMP: return put_timestamp(b, value);
    case DIALECT: return put_dialect(b, value);
    case ORIGIN: return put_origin(b, origin_values);
    default: return DECLINED;
    }
}

/* The members of ``fields`` whose values are ``values``, in the members' order; the
 * first member's punctuation starts with ``first`` in place of its comma. */
static int
put_members(Buffer *b, const Fields *fields, PyObject **values, PyObject **origin_values,
            const char *first)
{
    int result = WRITTEN;
    for (Py_ssize_t n = 0; n < fields->count && result == WRITTEN; n++) {
        int i = fields->order[n];
        const char *member = PyBytes_AS_STRING(fields->members[i]);
        Py_ssize_t size = PyBytes_GET_SIZE(fields->members[i]);
        result = n == 0 && first != NULL ? put(b, first, 1) || put(b, member + 1, size - 1)
                                         : put(b, member, size);
        if (result == WRITTEN) {
            result = put_value(b, fields->forms[i], values[i], origin_values);
        }
    }
    return result;
}

/* --- the key ---------------------------------------------------------------------------- */

/* A value of the key's record, as AuditEvent.key writes it: text as it is, numbers in
 * decimal, None as nothing, a set flag as its name, a time as isoformat() writes it. */
static int
put_key_value(Buffer *b, int form, PyObject *name, PyObject *value)
{
    if (value == Py_None && (form == OPTIONAL_TEXT || form == OPTIONAL_INTEGER)) {
        return WRITTEN;
    }
    switch (form) {
    case TEXT:
    case OPTIONAL_TEXT:
        return put_text(b, value);
    case INTEGER:
    case OPTIONAL_INTEGER: {
        if (!PyLong_CheckExact(value)) {
            return DECLINED;
        }
        int overflow;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow) {
            return DECLINED;
        }
        return number == -1 && PyErr_Occurred() ? FAILED : put_digits(b, number, 0);
    }
    case FLAG:
        return value == Py_True ? put_text(b, name) : value == Py_False ? WRITTEN : DECLINED;
    case TIMESTAMP: {
        if (!is_utc_datetime(value)) {
            return DECLINED;
        }
        /* isoformat() of a UTC time: microseconds only when there are some. */
        int micros = PyDateTime_DATE_GET_MICROSECOND(value);
        return put_date_time(b, value) ||
                       (micros && (put(b, ".", 1) || put_digits(b, micros, 6))) ||
                       PUT_LITERAL(b, "+00:00")
                   ? FAILED
                   : WRITTEN;
    }
    default:
        return DECLINED;
    }
}

/* The last text whose repr() was taken, and its repr: a file's lines share their path. */
static PyObject *last_text = NULL, *last_repr = NULL;

/* repr() of a place's value: None, an int (in decimal, its repr) or a str. */
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
            return number == -1 && PyErr_Occurred() ? FAILED : put_digits(b, number, 0);
        }
    }
    if (value != last_text || !PyUnicode_CheckExact(value)) {
        PyObject *text = PyObject_Repr(value);
        if (text == NULL) {
            return FAILED;
        }
        Py_XSETREF(last_text, Py_NewRef(value));
        Py_XSETREF(last_repr, text);
    }
    return put_text(b, last_repr);
}

/* U+001D and the repr of the place tuple -- the origin's place fields, then None for
 * the event id -- where the origin knows any of them; nothing where it knows none. */
static int
put_place(Buffer *b, PyObject **values)
{
    int known = 0;
    for (int n = 0; n < key_place_size; n++) {
        known |= values[key_place[n]] != Py_None;
    }
    int result = known ? put(b, "\x1d(", 2) : WRITTEN;
    for (int n = 0; n < key_place_size && known && result == WRITTEN; n++) {
        result = put_repr(b, values[key_place[n]]);
        if (result == WRITTEN) {
            result = PUT_LITERAL(b, ", ");
        }
    }
    if (known && result == WRITTEN) {
        result = PUT_LITERAL(b, "None)");
    }
    return result;
}

/* hashlib's digest of the key's text, in lowercase hex into ``hex`` (32 digits: the
 * digest's size is checked where it is configured). */
static int
put_digest(const Buffer *text, char hex[32])
{
    PyObject *data = PyBytes_FromStringAndSize(text->data, text->size);
    if (data == NULL) {
        return FAILED;
    }
    /* A copy of a hash made once with the digest's size, then two method calls: the
     * constructor's keyword argument would cost a dict and its parsing every event. */
    PyObject *hash = PyObject_CallNoArgs(hash_copy);
    PyObject *args[] = {hash, data};
    PyObject *updated = hash ? PyObject_Vectorcall(hash_update, args, 2, NULL) : NULL;
    Py_DECREF(data);
    PyObject *bytes = updated ? PyObject_Vectorcall(hash_digest, args, 1, NULL) : NULL;
    Py_XDECREF(updated);
    Py_XDECREF(hash);
    if (bytes == NULL) {
        return FAILED;
    }
    int result = DECLINED;
    if (PyBytes_CheckExact(bytes) && PyBytes_GET_SIZE(bytes) == 16) {
        static const char digits[] = "0123456789abcdef";
        const unsigned char *raw = (const unsigned char *)PyBytes_AS_STRING(bytes);
        for (int i = 0; i < 16; i++) {
            hex[2 * i] = digits[raw[i] >> 4];
            hex[2 * i + 1] = digits[raw[i] & 15];
        }
        result = WRITTEN;
    }
    Py_DECREF(bytes);
    return result;
}

/* The key of an event without a CloudWatch id, as AuditEvent.key makes it: the digest of
 * the record's fields joined by U+001F, then the place; its hex digits into ``hex``. */
static int
digest_key(PyObject **values, PyObject **origin_values, char hex[32])
{
    Buffer b;
    buffer_init(&b);
    int result = WRITTEN;
    for (int n = 0; n < key_record_size && result == WRITTEN; n++) {
        int i = key_record[n];
        result = n ? put(&b, "\x1f", 1) : WRITTEN;
        if (result == WRITTEN) {
            result = put_key_value(&b, event_fields.forms[i], event_fields.names[i], values[i]);
        }
    }
    if (origin_values != NULL && result == WRITTEN) {
        result = put_place(&b, origin_values);
    }
    if (result == WRITTEN) {
        result = put_digest(&b, hex);
    }
    buffer_free(&b);
    return result;
}

/* ``"key":`` and the event's key: its origin's event id, or the digest. */
static int
put_key(Buffer *b, PyObject **values, PyObject **origin_values)
{
    PyObject *event_id = origin_values == NULL ? Py_None : origin_values[event_id_at];
    if (event_id != Py_None && !PyUnicode_CheckExact(event_id)) {
        return DECLINED;
    }
    int result = PUT_LITERAL(b, "{\"key\":");
    if (result == WRITTEN && event_id != Py_None && PyUnicode_GET_LENGTH(event_id) > 0) {
        return put_string(b, event_id);
    }
    char hex[32];
    result = result == WRITTEN ? digest_key(values, origin_values, hex) : result;
    if (result == WRITTEN) {
        result = put(b, "\"", 1) || put(b, hex, 32) || put(b, "\"", 1) ? FAILED : WRITTEN;
    }
    return result;
}

/* An event's JSON line, no newline, appended to ``b``: WRITTEN, or DECLINED where the
 * Python writer must write it (not our class, or a value this writer does not handle). */
static int
put_event(Buffer *b, PyObject *event)
{
    if (Py_TYPE(event) != event_type) {
        return DECLINED;
    }
    PyObject *values[MAX_FIELDS], *origin_values[MAX_FIELDS];
    if (read_values(event, &event_fields, values)) {
        return FAILED;
    }
    PyObject *origin = values[origin_at];
    int result = WRITTEN;
    if (origin != Py_None && Py_TYPE(origin) != origin_type) {
        result = DECLINED;
    }
    else if (origin != Py_None && read_values(origin, &origin_fields, origin_values)) {
        result = FAILED;
    }
    int has_origin = result == WRITTEN && origin != Py_None;
    Py_ssize_t start = b->size;
    if (result == WRITTEN) {
        result = put_key(b, values, has_origin ? origin_values : NULL);
    }
    if (result == WRITTEN) {
        result = put_members(b, &event_fields, values, has_origin ? origin_values : NULL, NULL);
    }
    if (result == WRITTEN) {
        result = put(b, "}", 1);
    }
    if (has_origin) {
        release_values(&origin_fields, origin_values);
    }
    release_values(&event_fields, values);
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

static int
check_configured(void)
{
    if (event_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "auditsync._c_json is not configured");
        return 0;
    }
    return 1;
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
    /* Room for a batch of plain lines at once, not a copy at each doubling. */
    int result = PyList_GET_SIZE(events) > 1 ? grow(&buffer, PyList_GET_SIZE(events) * 640)
                                              : WRITTEN;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(events) && result == WRITTEN; i++) {
        /* Held: reading a field may run Python code, and the list is the caller's. */
        PyObject *event = Py_NewRef(PyList_GET_ITEM(events, i));
        result = put_event(&buffer, event);
        Py_DECREF(event);
        if (result == WRITTEN) {
            result = put(&buffer, "\n", 1);
        }
    }
    return finish(&buffer, result);
}

/* --- configure ---------------------------------------------------------------------------- */

static void
clear_fields(Fields *fields)
{
    for (Py_ssize_t i = 0; i < fields->count; i++) {
        Py_CLEAR(fields->names[i]);
        Py_CLEAR(fields->descriptors[i]);
        Py_CLEAR(fields->members[i]);
    }
    fields->count = 0;
    Py_CLEAR(fields->type);
}

/* ``fields`` from a class and its table, ``((name, form), ...)`` in order, and the order
 * of its JSON members, a tuple of names. Each field must be a slot: a member descriptor,
 * which runs no Python code. 0, or -1 with an exception. */
static int
take_fields(Fields *fields, PyObject *type, PyObject *table, PyObject *order, const char *what)
{
    clear_fields(fields);
    if (!PyType_Check(type) || !PyTuple_Check(table) || !PyTuple_Check(order) ||
        PyTuple_GET_SIZE(table) > MAX_FIELDS || PyTuple_GET_SIZE(order) != PyTuple_GET_SIZE(table)) {
        PyErr_Format(PyExc_TypeError, "%s: a table of at most %d fields and their order", what,
                     MAX_FIELDS);
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(table); i++) {
        PyObject *row = PyTuple_GET_ITEM(table, i), *name;
        int form;
        if (!PyArg_ParseTuple(row, "Ui", &name, &form)) {
            clear_fields(fields);
            return -1;
        }
        if (form < 1 || form > (int)FORMS) {
            PyErr_Format(PyExc_ValueError, "%s: field %R has no form %d", what, name, form);
            clear_fields(fields);
            return -1;
        }
        PyObject *descriptor = PyObject_GetAttr(type, name);
        if (descriptor == NULL || Py_TYPE(descriptor) != &PyMemberDescr_Type) {
            Py_XDECREF(descriptor);
            PyErr_Format(PyExc_TypeError, "%s: field %R is not a slot", what, name);
            clear_fields(fields);
            return -1;
        }
        fields->names[i] = Py_NewRef(name);
        fields->descriptors[i] = descriptor;
        fields->get[i] = (descrgetfunc)PyType_GetSlot(Py_TYPE(descriptor), Py_tp_descr_get);
        fields->forms[i] = form;
        /* A field's name is an identifier: JSON needs no escape for it. */
        PyObject *member = PyUnicode_FromFormat(",\"%U\":", name);
        fields->members[i] = member ? PyUnicode_AsUTF8String(member) : NULL;
        Py_XDECREF(member);
        fields->count = i + 1;
        if (fields->members[i] == NULL) {
            clear_fields(fields);
            return -1;
        }
    }
    for (Py_ssize_t n = 0; n < PyTuple_GET_SIZE(order); n++) {
        PyObject *name = PyTuple_GET_ITEM(order, n);
        int found = -1;
        for (Py_ssize_t i = 0; i < fields->count && found == -1; i++) {
            if (PyUnicode_Check(name) && PyUnicode_Compare(name, fields->names[i]) == 0) {
                found = (int)i;
            }
        }
        if (found == -1) {
            PyErr_Format(PyExc_ValueError, "%s: the members' order names %R", what, name);
            clear_fields(fields);
            return -1;
        }
        fields->order[n] = found;
    }
    fields->type = (PyTypeObject *)Py_NewRef(type);
    return 0;
}

/* The positions in ``fields`` of the names in ``names``, into ``positions``; the count,
 * or -1 with an exception. */
static int
take_positions(const Fields *fields, PyObject *names, int *positions, const char *what)
{
    if (!PyTuple_Check(names) || PyTuple_GET_SIZE(names) > MAX_FIELDS) {
        PyErr_Format(PyExc_TypeError, "%s: a tuple of field names", what);
        return -1;
    }
    for (Py_ssize_t n = 0; n < PyTuple_GET_SIZE(names); n++) {
        PyObject *name = PyTuple_GET_ITEM(names, n);
        positions[n] = -1;
        for (Py_ssize_t i = 0; i < fields->count && positions[n] == -1; i++) {
            if (PyUnicode_Check(name) && PyUnicode_Compare(name, fields->names[i]) == 0) {
                positions[n] = (int)i;
            }
        }
        if (positions[n] == -1) {
            PyErr_Format(PyExc_ValueError, "%s: no field %R", what, name);
            return -1;
        }
    }
    return (int)PyTuple_GET_SIZE(names);
}

/* Forget the derived members' values kept for None and for the last value asked. */
static void
clear_derived(void)
{
    if (last_source != NULL) {
        release_values(&derived_fields, last_derived);
        Py_CLEAR(last_source);
    }
    for (Py_ssize_t i = 0; i < derived_fields.count; i++) {
        Py_CLEAR(none_derived[i]);
    }
}

/* The derived members' values for None, kept. 0, or -1 with an exception. */
static int
take_none_derived(void)
{
    PyObject *derived = PyObject_CallOneArg(derive, Py_None);
    if (derived == NULL) {
        return -1;
    }
    int result = Py_TYPE(derived) == derived_fields.type
                     ? read_values(derived, &derived_fields, none_derived)
                     : -1;
    if (result) {
        memset(none_derived, 0, sizeof(none_derived)); /* released by read_values */
    }
    if (result && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_TypeError, "configure: derive(None) is not of the derived table");
    }
    Py_DECREF(derived);
    return result;
}

/* args: 0-2 the event's type, table and members' order; 3-5 the origin's; 6-8 the
 * origin's derived members'; 9 derive; 10 the origin field they follow from; 11 the
 * key's record; 12 its place; 13 the dialects; 14 UTC; 15 blake2b; 16 the digest size. */
static PyObject *
configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 17 || !PyType_Check(args[0]) || !PyType_Check(args[3]) ||
        !PyType_Check(args[6]) || !PyCallable_Check(args[9]) || !PyUnicode_Check(args[10]) ||
        !PyTuple_Check(args[13]) || PyTuple_GET_SIZE(args[13]) != 4 ||
        !PyLong_CheckExact(args[16])) {
        PyErr_SetString(PyExc_TypeError,
                        "configure(event_type, event_fields, event_members, origin_type, "
                        "origin_fields, origin_members, derived_type, derived_fields, "
                        "derived_members, derive, derived_from, key_record, key_place, "
                        "dialects, utc, key_hash, digest_size)");
        return NULL;
    }
    event_type = origin_type = NULL;
    clear_derived();
    if (take_fields(&event_fields, args[0], args[1], args[2], "event") ||
        take_fields(&origin_fields, args[3], args[4], args[5], "origin") ||
        take_fields(&derived_fields, args[6], args[7], args[8], "derived")) {
        return NULL;
    }
    int from[1];
    PyObject *from_names = PyTuple_Pack(1, args[10]);
    if (from_names == NULL) {
        return NULL;
    }
    derived_from_at = take_positions(&origin_fields, from_names, from, "derived from");
    Py_DECREF(from_names);
    if (derived_from_at < 0) {
        return NULL;
    }
    derived_from_at = from[0];
    Py_XSETREF(derive, Py_NewRef(args[9]));
    if (take_none_derived()) {
        return NULL;
    }
    key_record_size = take_positions(&event_fields, args[11], key_record, "key record");
    key_place_size =
        key_record_size < 0 ? -1 : take_positions(&origin_fields, args[12], key_place, "key place");
    if (key_place_size < 0) {
        return NULL;
    }
    origin_at = event_id_at = -1;
    for (Py_ssize_t i = 0; i < event_fields.count; i++) {
        if (event_fields.forms[i] == ORIGIN) {
            origin_at = (int)i;
        }
    }
    for (Py_ssize_t i = 0; i < origin_fields.count; i++) {
        if (PyUnicode_CompareWithASCIIString(origin_fields.names[i], "event_id") == 0) {
            event_id_at = (int)i;
        }
    }
    if (origin_at == -1 || event_id_at == -1) {
        PyErr_SetString(PyExc_ValueError, "configure: the event has no origin with an event_id");
        return NULL;
    }
    event_type = event_fields.type;
    origin_type = origin_fields.type;
    for (int i = 0; i < 4; i++) {
        Py_XSETREF(dialects[i], Py_NewRef(PyTuple_GET_ITEM(args[13], i)));
    }
    if (PyLong_AsLong(args[16]) != 16) {
        PyErr_SetString(PyExc_ValueError, "configure: this writer writes 16-byte digests");
        return NULL;
    }
    /* The key's hash: a hashlib object of the digest's size, fed nothing; each key
     * is digested by a copy of it. */
    PyObject *copy = PyObject_GetAttrString(args[15], "copy");
    PyObject *update = copy ? PyObject_GetAttrString((PyObject *)Py_TYPE(args[15]), "update") : NULL;
    PyObject *digest = update ? PyObject_GetAttrString((PyObject *)Py_TYPE(args[15]), "digest") : NULL;
    if (digest == NULL) {
        Py_XDECREF(copy);
        Py_XDECREF(update);
        return NULL;
    }
    Py_XSETREF(hash_copy, copy);
    Py_XSETREF(hash_update, update);
    Py_XSETREF(hash_digest, digest);
    Py_XSETREF(utc, Py_NewRef(args[14]));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL,
     "Hand over the event's and the origin's tables, the origin's derived members and "
     "their function, the key's fields, the dialects, UTC and the key's hash (a hashlib "
     "object of the digest's size, fed nothing)."},
    {"event_json", (PyCFunction)event_json, METH_O,
     "event_json(event) -> bytes | None: the event's JSON line, as the Python writer's"},
    {"json_lines", (PyCFunction)json_lines, METH_O,
     "json_lines(events) -> bytes | None: the events' JSON Lines, as the Python writer's"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT, "auditsync._c_json",
    "The JSON form of events at C speed; see auditsync/_json.py.", -1, methods,
};

PyMODINIT_FUNC
PyInit__c_json(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_definition);
    PyObject *forms = module ? PyTuple_New(FORMS) : NULL;
    if (forms == NULL) {
        Py_XDECREF(module);
        return NULL;
    }
    for (size_t i = 0; i < FORMS; i++) {
        PyObject *name = PyUnicode_FromString(form_names[i]);
        if (name == NULL) {
            Py_DECREF(forms);
            Py_DECREF(module);
            return NULL;
        }
        PyTuple_SET_ITEM(forms, i, name);
    }
    /* The forms by number from 1, for auditsync to hold against its Form. */
    if (PyModule_AddObject(module, "FORMS", forms)) {
        Py_DECREF(forms);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
