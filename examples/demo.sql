-- Vigil's demo data: a small shop in schema `shop`, with generated (not real)
-- people in it. Load it straight into the upstream server, not through Vigil:
--
--   psql -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -f examples/demo.sql
--
-- examples/quickstart.toml masks its personal data for `agent` and not for
-- `alice`. Every value is made from the row number, so reloading gives the
-- same data: SSNs have valid area/group/serial numbers, card numbers pass the
-- Luhn check, emails and phones are well formed.

BEGIN;
DROP SCHEMA IF EXISTS shop CASCADE;
CREATE SCHEMA shop;

-- The Luhn check digit for a string of digits.
CREATE FUNCTION shop.luhn_digit(digits text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT ((10 - sum(d) % 10) % 10)::text
  FROM (
    SELECT CASE WHEN i % 2 = 1 THEN (n * 2) / 10 + (n * 2) % 10 ELSE n END AS d
    FROM (
      SELECT i, substr(reverse(digits), i, 1)::int AS n
      FROM generate_series(1, length(digits)) AS i
    ) AS positions
  ) AS doubled
$$;

CREATE TABLE shop.customers (
    id          integer PRIMARY KEY,
    full_name   text NOT NULL,
    email       text NOT NULL UNIQUE,
    phone       text,
    ssn         text NOT NULL UNIQUE,
    card_number text,
    birth_date  date,
    notes       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shop.orders (
    id           bigint PRIMARY KEY,
    order_number text NOT NULL UNIQUE,
    customer_id  integer NOT NULL REFERENCES shop.customers(id),
    amount       numeric(10, 2) NOT NULL,
    status       text NOT NULL,
    client_ip    inet,
    created_at   timestamptz NOT NULL
);

WITH names AS (
    SELECT i,
           (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Frances','Ken','Margaret','Niklaus'])[1 + i % 10] AS first,
           (ARRAY['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth','Allen','Thompson','Hamilton','Wirth'])[1 + (i / 10) % 10] AS last
    FROM generate_series(1, 1000) AS i
)
INSERT INTO shop.customers (id, full_name, email, phone, ssn, card_number, birth_date, notes, created_at)
SELECT i,
       first || ' ' || last,
       lower(first) || '.' || lower(last) || i || '@example.com',
       '+1-555-' || lpad((1000 + i)::text, 3, '0') || '-' || lpad((i * 37 % 10000)::text, 4, '0'),
       -- area 100..665, group 01..99, serial 0001..9999
       lpad((100 + i % 566)::text, 3, '0') || '-' || lpad((1 + i % 99)::text, 2, '0') || '-' || lpad((1 + i)::text, 4, '0'),
       '4' || lpad((i * 7919)::text, 14, '0') || shop.luhn_digit('4' || lpad((i * 7919)::text, 14, '0')),
       date '1950-01-01' + (i * 17 % 18000),
       CASE WHEN i % 7 = 0 THEN 'prefers email: ' || lower(first) || i || '@example.org' ELSE 'regular customer' END,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour'
FROM names;

INSERT INTO shop.orders (id, order_number, customer_id, amount, status, client_ip, created_at)
SELECT n,
       'ORD-2024-' || lpad(n::text, 6, '0'),
       1 + n % 1000,
       round((5 + (n * 7 % 500) + (n % 100) / 100.0)::numeric, 2),
       (ARRAY['placed','paid','shipped','delivered','returned'])[1 + n % 5],
       ('10.' || (n / 65536) % 256 || '.' || (n / 256) % 256 || '.' || n % 256)::inet,
       timestamptz '2024-02-01 00:00:00+00' + n * interval '7 minutes'
FROM generate_series(1, 5000) AS n;

-- What support staff work from: contact details, no SSN or card.
CREATE VIEW shop.customer_contacts AS
SELECT c.id, c.full_name, c.email, c.phone
FROM shop.customers c;

-- Per-customer totals, with the SSN's last four digits for identity checks.
CREATE VIEW shop.customer_totals AS
SELECT c.id, c.full_name, right(c.ssn, 4) AS ssn_last4, count(o.id) AS orders, sum(o.amount) AS total
FROM shop.customers c LEFT JOIN shop.orders o ON o.customer_id = c.id
GROUP BY c.id, c.full_name, c.ssn;

ANALYZE shop.customers;
ANALYZE shop.orders;
COMMIT;
