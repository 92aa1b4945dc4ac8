#ifndef CHTTPPARSER_SHIM_H
#define CHTTPPARSER_SHIM_H

/* Debian's libhttp-parser-dev (http_parser 2.9.4, Node's former HTTP/1.x parser). It ships no pkg-config file:
 * the header is in /usr/include and the library in the default search path, so the module map only links it. */
#include <http_parser.h>

/* HTTP_PARSER_ERRNO is a macro, which Swift cannot call: the metrics endpoint reads the parser's error through
 * this. */
static inline enum http_errno chttpparser_errno(const http_parser *parser) {
    return HTTP_PARSER_ERRNO(parser);
}

/* The F_* flags live in an 8-bit field of the parser; reading them here keeps the bit-field layout on the C side. */
static inline unsigned int chttpparser_flags(const http_parser *parser) {
    return parser->flags;
}

/* Whether the Upgrade header (or CONNECT) made the parser stop after the head: what follows is not HTTP/1.x. */
static inline int chttpparser_is_upgrade(const http_parser *parser) {
    return parser->upgrade;
}

/* The request's method (enum http_method), an 8-bit field. */
static inline enum http_method chttpparser_method(const http_parser *parser) {
    return (enum http_method)parser->method;
}

/* The offset and length of one field of a parsed URL: field_data is an array of an anonymous struct, which Swift
 * imports as a tuple it cannot index. Returns 0, or -1 when the URL has no such field. */
static inline int chttpparser_url_field(const struct http_parser_url *url, enum http_parser_url_fields field,
                                        uint16_t *offset, uint16_t *length) {
    if (field >= UF_MAX || (url->field_set & (1 << field)) == 0) {
        return -1;
    }
    *offset = url->field_data[field].off;
    *length = url->field_data[field].len;
    return 0;
}

#endif
