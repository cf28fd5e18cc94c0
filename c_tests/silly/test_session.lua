-- silly face: two tls.so sessions talking over real sockets (client and
-- server in one process, driven the way silly's tls.lua drives them).
local lib = require "lib"
local tls, ctx = lib.tls, lib.ctx
local eq, ok = lib.eq, lib.ok

local A, B, DEFAULT = lib.pair("a"), lib.pair("b"), lib.pair("default")
local BIG = (tonumber(os.getenv("SILLY_BIG_MB")) or 64) * 1024 * 1024

local client = ctx.client()

local function close_pair(c, s)
	tls.close(c.t)
	tls.close(s.t)
	lib.drop(c)
	lib.drop(s)
end

-- ------------------------------------------------------------ handshake
do
	local sc = ctx.server({ A })
	local a, b = host.socketpair()
	local c = lib.open(client, a, "localhost")
	local s = lib.open(sc, b)
	local r, x = lib.start(s)
	ok(r == -1 and x == nil, "server handshake before any data: -1, nil")
	r, x = lib.start(c)
	ok(r == -1 and x == nil, "client handshake: -1, nil (ClientHello sent)")
	local _, sends = host.sendinfo(a)
	eq(sends, 1, "the ClientHello went out in one silly_tcp_send")
	ok(lib.wait(function() return c.hs ~= -1 and s.hs ~= -1 end), "both handshakes finish")
	ok(c.hs == 1 and s.hs == 1, "handshake: 1 on both ends")
	ok(c.alpn == "" and s.alpn == "", "no ALPN negotiated: alpn is \"\" (not nil)")
	r, x = tls.handshake(c.t)
	ok(r == 1 and x == "", "handshake after completion: 1, \"\" again")
	close_pair(c, s)
	sc:free()
end

-- ------------------------------------------------------------ ALPN
do
	local sc = ctx.server({ A }, nil, lib.wire { "h2", "http/1.1" })
	local c, s = lib.connect(client, sc, { host = "localhost", alpn = lib.wire { "http/1.1", "h2" } })
	ok(c.hs == 1 and c.alpn == "h2" and s.alpn == "h2",
		"server preference: client offers http/1.1,h2, server prefers h2 -> h2 (" .. tostring(c.alpn) .. ")")
	close_pair(c, s)

	c, s = lib.connect(client, sc, { alpn = lib.wire { "http/1.1" } })
	ok(c.alpn == "http/1.1" and s.alpn == "http/1.1", "the one common protocol is chosen")
	close_pair(c, s)

	c, s = lib.connect(client, sc, { alpn = lib.wire { "foo", "bar" } })
	ok(c.hs == 1 and s.hs == 1 and c.alpn == "" and s.alpn == "",
		"no overlap: handshake succeeds without ALPN (no alert)")
	close_pair(c, s)

	c, s = lib.connect(client, sc, {})
	ok(c.hs == 1 and c.alpn == "" and s.alpn == "", "client offers nothing: \"\"")
	close_pair(c, s)
	sc:free()

	sc = ctx.server({ A })
	c, s = lib.connect(client, sc, { alpn = lib.wire { "h2" } })
	ok(c.hs == 1 and c.alpn == "" and s.alpn == "", "server without ALPN: \"\"")
	close_pair(c, s)

	-- every identity of a multi-certificate server selects ALPN
	local multi = ctx.server({ A, B }, nil, lib.wire { "h2" })
	c, s = lib.connect(client, multi, { host = "localhost2", alpn = lib.wire { "http/1.1", "h2" } })
	ok(c.alpn == "h2" and s.alpn == "h2", "ALPN after an SNI switch to the second certificate")
	close_pair(c, s)
	multi:free()
	sc:free()
end

-- ------------------------------------------------------------ SNI through peer verification
do
	local sc = ctx.server({ A, B, DEFAULT })
	local function served(name, trust)
		local v = ctx.client { verify = true, ca = trust.cert }
		local c, s = lib.connect(v, sc, { host = name })
		local good = c.hs == 1
		close_pair(c, s)
		v:free()
		host.logs()
		return good
	end
	ok(served("localhost", A), "SNI localhost -> certificate A (verified by a client trusting only A)")
	ok(served("localhost2", B), "SNI localhost2 -> certificate B")
	ok(not served("localhost2", A), "SNI localhost2 is not served A")
	ok(not served("localhost", B), "SNI localhost is not served B")
	sc:free()

	-- a name too long for SNI is not sent; the handshake goes on
	local c, s = lib.connect(client, ctx.server({ A }), { host = string.rep("x", 300) })
	ok(c.hs == 1 and s.hs == 1, "a 300-byte hostname: no SNI, handshake succeeds")
	close_pair(c, s)
end

-- ------------------------------------------------------------ optional verification
do
	local ca = lib.pki("ca.crt")
	local function server_of(crt, key)
		return ctx.server({ { cert = lib.pki(crt), key = lib.pki(key) } })
	end
	local leaf = server_of("leaf.crt", "leaf.key")
	local v = ctx.client { verify = true, ca = ca }
	local c, s = lib.connect(v, leaf, { host = "localhost" })
	ok(c.hs == 1 and s.hs == 1, "verify: trusted chain and matching name")
	close_pair(c, s)
	c, s = lib.connect(v, leaf, { host = "127.0.0.1" })
	ok(c.hs == 1, "verify: IP literal against an IP SAN")
	close_pair(c, s)
	c, s = lib.connect(v, leaf, { host = "other.example" })
	ok(c.hs == 0 and c.err == lib.ERR_TLS, "verify: wrong name -> 0, TLS error")
	ok(s.hs == 0, "verify: the server sees the client's alert")
	local logs = host.logs()
	ok(logs:lower():find("mismatch", 1, true) ~= nil, "verify: the log says why: " .. logs:match("[^\n]*"))
	close_pair(c, s)
	local wrong = server_of("wronghost.crt", "wronghost.key")
	c, s = lib.connect(v, wrong, {})
	ok(c.hs == 1, "verify without a hostname: the chain alone is checked")
	close_pair(c, s)
	c, s = lib.connect(v, wrong, { host = "localhost" })
	ok(c.hs == 0, "verify: the same certificate with a hostname that does not match")
	host.logs()
	close_pair(c, s)
	wrong:free()
	local expired = server_of("expired.crt", "expired.key")
	c, s = lib.connect(v, expired, { host = "localhost" })
	ok(c.hs == 0 and c.err == lib.ERR_TLS, "verify: expired certificate refused")
	ok(host.logs():find("expired", 1, true) ~= nil, "verify: log says expired")
	close_pair(c, s)
	local selfsigned = server_of("selfsigned.crt", "selfsigned.key")
	c, s = lib.connect(v, selfsigned, { host = "localhost" })
	ok(c.hs == 0, "verify: self-signed certificate refused")
	host.logs()
	close_pair(c, s)
	-- the default client (what tls.lua uses) verifies nothing
	c, s = lib.connect(client, expired, { host = "localhost" })
	ok(c.hs == 1, "no verification by default: expired certificate accepted")
	close_pair(c, s)
	c, s = lib.connect(client, selfsigned, { host = "wrong.example" })
	ok(c.hs == 1, "no verification by default: self-signed, wrong name accepted")
	close_pair(c, s)
	for _, x in ipairs { leaf, expired, selfsigned, v } do
		x:free()
	end
end

-- ------------------------------------------------------------ read / write
local sc = ctx.server({ A })
do
	local c, s = lib.connect(client, sc, { host = "localhost" })
	local _, sends0 = host.sendinfo(c.fd)
	local w, err = tls.write(c.t, "hello\nworld\n")
	ok(w == true and err == nil, "write(string): true, nil")
	eq(select(2, host.sendinfo(c.fd)) - sends0, 1, "one silly_tcp_send per write")
	ok(lib.wait(function() return s.total >= 12 end), "push returns the buffered plaintext size")
	eq(s.total, 12, "push total = 12")
	eq(tls.size(s.t), 12, "size = 12")
	local d, n = tls.read(s.t, "\n")
	ok(d == "hello\n" and n == 6, "read(\"\\n\"): through the delimiter, inclusive; 6 left")
	d, n = tls.read(s.t, 5)
	ok(d == "world" and n == 1, "read(5): exactly 5 bytes; 1 left")
	d, n = tls.read(s.t, 2)
	ok(d == nil and n == 1, "read(2) with 1 buffered: nil, 1 (no partial data)")
	d, n = tls.read(s.t, 0)
	ok(d == nil and n == 1, "read(0): nil, 1")
	d, n = tls.read(s.t, -3)
	ok(d == nil and n == 1, "read(-3): nil, 1")
	d, n = tls.read(s.t, "x")
	ok(d == nil and n == 1, "read(delim) without the delimiter buffered: nil, 1")
	d, n = tls.read(s.t, 1.5)
	ok(d == nil and n == 1, "read(1.5): nil, 1")
	d, n = tls.read(s.t, "\n")
	ok(d == "\n" and n == 0, "read(\"\\n\") of a lone delimiter; 0 left")

	sends0 = select(2, host.sendinfo(c.fd))
	w, err = tls.write(c.t, { "", "hello", "", " world", "" })
	ok(w == true and err == nil, "write(table with empty pieces): true, nil")
	eq(select(2, host.sendinfo(c.fd)) - sends0, 1, "a table write is one silly_tcp_send")
	d = lib.read(s, 11)
	eq(d, "hello world", "the pieces arrive in order, empty ones skipped")

	sends0 = select(2, host.sendinfo(c.fd))
	w, err = tls.write(c.t, "")
	ok(w == true and err == nil, "write(\"\"): true, nil")
	w, err = tls.write(c.t, { "", "", "" })
	ok(w == true and err == nil, "write({\"\", \"\", \"\"}): true, nil")
	eq(select(2, host.sendinfo(c.fd)) - sends0, 0, "nothing to send: no silly_tcp_send")
	w = tls.write(c.t, { 1, 2.5, "x" })
	ok(w == true, "numbers in a table are written as strings")
	eq(lib.read(s, 4), "12.5", "numbers arrive as text")
	eq(lib.read(s, "x"), "x", "a one-byte line")

	-- server to client, after the client's own reads
	w = tls.write(s.t, "pong\r\n")
	ok(w == true, "server write")
	eq(lib.read(c, "\n"), "pong\r\n", "client reads the server's line")

	-- ciphertext delivered one byte per data event
	host.chunk(1)
	tls.write(c.t, "fragmented\n")
	eq(lib.read(s, "\n"), "fragmented\n", "records fed one byte at a time are reassembled")
	host.chunk(256 * 1024)
	close_pair(c, s)

	-- a handshake fed one byte at a time
	host.chunk(1)
	c, s = lib.connect(client, sc, { host = "localhost", alpn = lib.wire { "h2" } })
	ok(c.hs == 1 and s.hs == 1, "a handshake fed one byte per push")
	host.chunk(256 * 1024)
	close_pair(c, s)
end

-- ------------------------------------------------------------ big transfers
do
	local c, s = lib.connect(client, sc, { host = "localhost" })
	local chunk = {}
	for i = 0, 255 do
		chunk[#chunk + 1] = string.char(i)
	end
	local data = string.rep(table.concat(chunk), BIG // 256)
	local _, sends0 = host.sendinfo(c.fd)
	local t0 = host.now()
	local w = tls.write(c.t, data)
	ok(w == true, string.format("one write of %d MiB: true", BIG >> 20))
	eq(select(2, host.sendinfo(c.fd)) - sends0, 1, "... handed over in one silly_tcp_send")
	ok(lib.wait(function() return s.total >= BIG end, 120000), "the server buffers all of it")
	eq(tls.size(s.t), BIG, "size = the whole write")
	local d, n = tls.read(s.t, BIG)
	ok(d == data and n == 0, string.format("one read(%d MiB) returns it intact", BIG >> 20))
	host.diag(string.format("%d MiB one way in %d ms", BIG >> 20, host.now() - t0))
	d = nil

	-- many lines, read one by one (silly's testtcp reads 32 MiB this way)
	local lines, total, seed = {}, 0, 1
	while total < BIG // 8 do
		seed = (seed * 1103515245 + 12345) % 2147483648
		local l = string.rep(string.char(65 + seed % 26), seed % 200) .. "\n"
		lines[#lines + 1] = l
		total = total + #l
	end
	tls.write(s.t, lines)
	local got, good = 0, true
	for i = 1, #lines do
		local l = lib.read(c, "\n")
		if l ~= lines[i] then
			good = false
			host.diag("line " .. i .. " differs")
			break
		end
		got = got + #l
	end
	ok(good and got == total, string.format("%d lines (%d bytes) read back with read(\"\\n\")", #lines, total))
	eq(tls.size(c.t), 0, "nothing left over")
	close_pair(c, s)
end

-- ------------------------------------------------------------ peer gone
do
	local c, s = lib.connect(client, sc, { host = "localhost" })
	lib.drop(c) -- the client's socket closes
	tls.close(c.t)
	local w1, e1 = tls.write(s.t, "x")
	ok(w1 == true and e1 == nil, "write after the peer closed: first true")
	local w2, e2 = tls.write(s.t, "y")
	ok(w2 == false and e2 == lib.ERR_CLOSED, "then false, \"Socket is closed (10003)\"")
	ok(lib.wait(function() return s.closed ~= nil end), "the socket layer reports the close: " .. tostring(s.closed))
	tls.close(s.t)
	lib.drop(s)
end

-- ------------------------------------------------------------ bad records after good ones
do
	local c, s = lib.connect(client, sc, { host = "localhost" })
	s.held = {}
	tls.write(c.t, "line1\nline2\n")
	ok(lib.wait(function() return #s.held > 0 end), "ciphertext held back")
	local held = s.held
	s.held = nil
	for _, h in ipairs(held) do
		tls.push(s.t, h.ptr, h.size)
	end
	local p, sz = host.dup(string.rep("\23\3\3\0\32" .. string.rep("\0", 32), 2))
	local n = tls.push(s.t, p, sz)
	eq(n, 12, "a bad record after good ones: the good plaintext stays buffered")
	eq(tls.read(s.t, "\n"), "line1\n", "and readable by delimiter")
	eq(tls.size(s.t), 6, "size follows")
	p, sz = host.dup("more")
	eq(tls.push(s.t, p, sz), 6, "later pushes are dropped (and freed)")
	eq(tls.read(s.t, 6), "line2\n", "and by length")
	local w, err = tls.write(s.t, "x")
	ok(w == false and err == lib.ERR_TLS, "write on the broken session: false, TLS error")
	ok(host.logs():find("openssl fd:" .. s.fd .. " error:", 1, true) ~= nil, "logged")
	close_pair(c, s)
end

-- ------------------------------------------------------------ reload and lifetimes
do
	local lctx = ctx.server({ A, B }, nil, lib.wire { "h2" })
	-- a reload with bad certificates fails and changes nothing
	local bad, err = ctx.server({ { cert = "garbage", key = "garbage" } })
	ok(bad == nil and err == "PEM_read_bio_X509 fail", "failed reload: nil, PEM_read_bio_X509 fail")
	host.logs()
	local trustA = ctx.client { verify = true, ca = A.cert }
	local c, s = lib.connect(trustA, lctx, { host = "localhost" })
	ok(c.hs == 1, "the old ctx keeps serving after a failed reload")
	close_pair(c, s)

	-- a connection accepted just before a reload, its ClientHello arriving
	-- after the old ctx was freed and collected
	local a, b2 = host.socketpair()
	local cs = lib.open(lctx, b2)
	lib.start(cs)
	local newctx = ctx.server({ B })
	ctx.free(lctx)
	lctx = nil
	collectgarbage()
	collectgarbage()
	local cc = lib.open(trustA, a, "localhost", lib.wire { "http/1.1", "h2" })
	lib.start(cc)
	ok(lib.wait(function() return cc.hs ~= -1 and cs.hs ~= -1 end), "handshake finishes")
	ok(cc.hs == 1 and cs.hs == 1 and cc.alpn == "h2",
		"the old ctx's SNI and ALPN callbacks still work after ctx.free + GC")
	close_pair(cc, cs)

	-- new connections use the new ctx
	local trustB = ctx.client { verify = true, ca = B.cert }
	c, s = lib.connect(trustB, newctx, { host = "localhost2" })
	ok(c.hs == 1, "new connections get the reloaded certificate")
	close_pair(c, s)

	-- a session whose ctx is gone, dropped mid-handshake
	a, b2 = host.socketpair()
	local orphan = lib.open(ctx.server({ A }), b2)
	lib.start(orphan)
	collectgarbage()
	cc = lib.open(client, a, "localhost")
	lib.start(cc)
	ok(lib.wait(function() return select(2, host.sendinfo(b2)) > 0 end), "the server answered the ClientHello")
	tls.close(orphan.t)
	ok(pcall(tls.close, orphan.t), "closing a session mid-handshake is safe")
	tls.close(cc.t)
	lib.drop(cc)
	lib.drop(orphan)
	newctx:free()
	trustA:free()
	trustB:free()
end

sc:free()
client:free()
host.logs()
