-- One psql session exercising the protocol paths a person uses: compared
-- byte for byte between a direct connection and one through Vigil.
\set ON_ERROR_STOP 0
\pset pager off
SELECT 1 AS one, 'text' AS t, NULL AS n, 1.5::numeric AS num, now() IS NOT NULL AS ts;
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2), tags text[], meta jsonb);
CREATE INDEX items_name ON items (name);
INSERT INTO items VALUES (1, 'apple', 1.20, '{red,fruit}', '{"k": 1}'), (2, 'pear', 0.80, NULL, NULL);
SELECT * FROM items ORDER BY id;
UPDATE items SET price = price * 2 WHERE id = 2 RETURNING id, price;
-- errors: unknown relation, unique violation, division by zero, syntax
SELECT * FROM no_such_table;
INSERT INTO items VALUES (1, 'dup', 0, NULL, NULL);
SELECT 1/0;
SELEC 1;
-- a multi-statement string in one Query message, then one failing midway
SELECT 1 AS a \; SELECT 2 AS b \; SELECT 3 AS c;
SELECT 'before' AS x \; SELECT 1/0 \; SELECT 'never' AS y;
-- transactions, including an aborted one
BEGIN;
INSERT INTO items VALUES (3, 'plum', 2.00, NULL, NULL);
SELECT count(*) FROM items;
COMMIT;
BEGIN;
SELECT 1/0;
SELECT 'ignored';
ROLLBACK;
-- COPY in and out
COPY items (id, name, price) FROM STDIN;
10	ten	10.00
11	eleven	11.00
12	twelve	\N
\.
COPY (SELECT id, name, price FROM items ORDER BY id) TO STDOUT;
COPY items TO STDOUT WITH (FORMAT csv, HEADER);
COPY items (id, name) FROM STDIN;
20	twenty
20	duplicate key
\.
SELECT count(*) FROM items;
\copy items to :'copyfile' with (format csv)
TRUNCATE items;
\copy items from :'copyfile' with (format csv)
SELECT count(*), sum(price) FROM items;
-- notices and notifications
DO $$ BEGIN RAISE NOTICE 'hello from a notice'; END $$;
LISTEN vigil_channel;
NOTIFY vigil_channel, 'hello';
SELECT 'after notify';
-- DDL
ALTER TABLE items ADD COLUMN note text DEFAULT 'n/a';
SELECT id, note FROM items ORDER BY id LIMIT 2;
CREATE VIEW cheap AS SELECT id, name FROM items WHERE price < 5;
SELECT * FROM cheap ORDER BY id;
DROP VIEW cheap;
DROP TABLE items;
SELECT 'done' AS status;
