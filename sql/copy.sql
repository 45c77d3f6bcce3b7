-- COPY round trips in text and binary format, the binary wire format
-- byte for byte, and malformed binary input.

-- \copy runs in psql, through the client protocol; pg_regress runs psql in
-- the build directory, where results/ exists

CREATE TABLE src (id int, v vector(5));
INSERT INTO src
SELECT i, ARRAY[i / 3.0, -i * 1e-7, i * 1e20, sqrt(i), 0]::real[]::vector
FROM generate_series(1, 200) i;
INSERT INTO src VALUES (201, NULL), (202, '[-0,1.4e-45,3.4028235e38,-3.4028235e38,0.1]');

-- text format
\copy src TO 'results/copy_vectors.txt'
CREATE TABLE dst_text (LIKE src);
\copy dst_text FROM 'results/copy_vectors.txt'
SELECT count(*) AS rows,
       count(*) FILTER (WHERE s.v IS NOT DISTINCT FROM d.v) AS identical
FROM src s JOIN dst_text d USING (id);

-- binary format
\copy src TO 'results/copy_vectors.bin' WITH (FORMAT binary)
CREATE TABLE dst_bin (LIKE src);
\copy dst_bin FROM 'results/copy_vectors.bin' WITH (FORMAT binary)
SELECT count(*) AS rows,
       count(*) FILTER (WHERE s.v IS NOT DISTINCT FROM d.v) AS identical,
       count(*) FILTER (WHERE s.v::text IS NOT DISTINCT FROM d.v::text) AS same_text
FROM src s JOIN dst_bin d USING (id);

-- the wire format: int16 dims, int16 zero, float4 elements, network order
SELECT encode(vector_send('[1,2,3]'), 'hex');
SELECT encode(vector_send('[-0,1e-45,-1.5]'), 'hex');

-- malformed binary input, fed to COPY FROM through a shell printf
CREATE FUNCTION copy_cmd(field bytea) RETURNS text LANGUAGE sql AS $$
    -- a binary COPY stream with one row of one field, as octal escapes
    SELECT 'printf ''' || string_agg('\' || (b / 64)::text || ((b / 8) % 8)::text || (b % 8)::text, '' ORDER BY i) || ''''
    FROM (SELECT i, get_byte(s, i) AS b
          FROM (SELECT '\x5047434f50590aff0d0a00'::bytea || '\x0000000000000000'::bytea
                       || '\x0001'::bytea || int4send(length(field)) || field || '\xffff'::bytea AS s) x,
               generate_series(0, length(s) - 1) i) y;
$$;
CREATE TABLE bad (v vector);
CREATE TABLE bad3 (v vector(3));

-- a well-formed row first, to show the framing works
SELECT copy_cmd('\x000200003f80000040000000') AS cmd \gset
COPY bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT v FROM bad;
-- zero dimensions
SELECT copy_cmd('\x00000000') AS cmd \gset
COPY bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
-- too many dimensions (16001)
SELECT copy_cmd('\x3e810000') AS cmd \gset
COPY bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
-- a negative int16 dimension count
SELECT copy_cmd('\xffff00003f800000') AS cmd \gset
COPY bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
-- nonzero reserved field
SELECT copy_cmd('\x000100013f800000') AS cmd \gset
COPY bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
-- two dimensions announced, one element sent
SELECT copy_cmd('\x000200003f800000') AS cmd \gset
COPY bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
-- shorter than the header
SELECT copy_cmd('\x0001') AS cmd \gset
COPY bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
-- trailing bytes after the elements
SELECT copy_cmd('\x000100003f80000000') AS cmd \gset
COPY bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
-- NaN and infinity
SELECT copy_cmd('\x000100007fc00000') AS cmd \gset
COPY bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT copy_cmd('\x00010000ff800000') AS cmd \gset
COPY bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
-- the column's typmod is enforced on binary input
SELECT copy_cmd('\x000200003f80000040000000') AS cmd \gset
COPY bad3 FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT count(*) AS rows_after_errors FROM bad;

DROP FUNCTION copy_cmd(bytea);
DROP TABLE src, dst_text, dst_bin, bad, bad3;
