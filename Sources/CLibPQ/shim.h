#ifndef CLIBPQ_SHIM_H
#define CLIBPQ_SHIM_H

/* libpq, PostgreSQL's client library (Debian's libpq-dev): the PostgreSQL store talks to the server through
   it, for every authentication method, TLS and multi-host failover that libpq connection strings offer. */
#include <libpq-fe.h>

#endif
