-- silly face against real OpenSSL peers: `openssl s_client` connecting to a
-- tls.so server (SNI order, ALPN, cipher lists, versions) and a tls.so
-- client talking to `openssl s_server`.
local lib = require "lib"
local tls, ctx = lib.tls, lib.ctx
local eq, ok = lib.eq, lib.ok

local A, B, DEFAULT = lib.pair("a"), lib.pair("b"), lib.pair("default")

-- ------------------------------------------------------------ tls.so server
local lfd, port = host.listen()
local server_ctx
local served = {}
lib.on_accept = function(fd)
	local e = lib.open(server_ctx, fd)
	-- close the socket when the peer closes its side, as a silly
	-- application does, so s_client need not wait for it
	e.on_close = lib.drop
	served[#served + 1] = e
	lib.start(e)
end

local function cleanup()
	for _, e in ipairs(served) do
		tls.close(e.t)
		if not e.closed then
			lib.drop(e)
		end
	end
	served = {}
end

-- s_client against server_ctx; returns its output and the server end
local function s_client(args)
	local argv = { "s_client", "-connect", "127.0.0.1:" .. port }
	for _, a in ipairs(args) do
		argv[#argv + 1] = a
	end
	local out, status = lib.run_openssl(argv)
	lib.wait(function() return #served > 0 and served[#served].hs ~= -1 end, 2000)
	local e = served[#served]
	local view = {
		out = out,
		status = status,
		subject = out:match("subject=([^\n]*)"),
		alpn = out:match("ALPN protocol: ([^\n]*)") or (out:find("No ALPN negotiated", 1, true) and ""),
		cipher = out:match("Cipher is ([^\n]*)"),
		version = out:match("New, ([^,]*),"),
		hs = e and e.hs,
		server_alpn = e and e.alpn,
	}
	cleanup()
	host.logs()
	return view
end

do
	server_ctx = ctx.server({ A, B, DEFAULT })
	local cases = {
		{ { "-servername", "localhost" }, "CN = localhost", "SNI localhost -> A" },
		{ { "-servername", "localhost2" }, "CN = localhost2", "SNI localhost2 -> B" },
		{ { "-servername", "127.0.0.1" }, "CN = 127.0.0.1", "SNI 127.0.0.1 -> DEFAULT (IP literal matched as a DNS name)" },
		{ { "-servername", "nomatch.example" }, "CN = localhost", "SNI nomatch.example -> A (the first)" },
		{ { "-noservername" }, "CN = localhost", "no SNI -> A (the first)" },
	}
	for _, c in ipairs(cases) do
		local v = s_client(c[1])
		if not eq(v.subject, c[2], c[3]) then
			host.diag(v.out)
		end
		ok(v.hs == 1, c[3] .. ": the server's handshake returned 1")
	end
	server_ctx:free()
	-- the same order with the default certificate listed first
	server_ctx = ctx.server({ DEFAULT, B })
	eq(s_client({ "-servername", "nomatch.example" }).subject, "CN = 127.0.0.1",
		"no match -> the first certificate, whichever it is")
	eq(s_client({ "-servername", "localhost2" }).subject, "CN = localhost2", "a later certificate by name")
	server_ctx:free()
end

do
	server_ctx = ctx.server({ A }, nil, lib.wire { "h2", "http/1.1" })
	local v = s_client({ "-servername", "localhost", "-alpn", "http/1.1,h2" })
	ok(v.alpn == "h2" and v.server_alpn == "h2", "s_client -alpn http/1.1,h2 -> h2 (server preference)")
	v = s_client({ "-alpn", "foo" })
	ok(v.alpn == "" and v.hs == 1 and v.server_alpn == "", "s_client -alpn foo -> no ALPN, handshake succeeds")
	v = s_client({})
	ok(v.alpn == "" and v.server_alpn == "", "s_client without -alpn -> \"\"")
	server_ctx:free()
end

do
	server_ctx = ctx.server({ A }, "ECDHE-RSA-AES128-GCM-SHA256")
	local v = s_client({ "-tls1_2" })
	ok(v.cipher == "ECDHE-RSA-AES128-GCM-SHA256" and v.version == "TLSv1.2",
		"ciphers apply to TLS 1.2: " .. tostring(v.cipher))
	v = s_client({})
	ok(v.version == "TLSv1.3" and v.cipher == "TLS_AES_256_GCM_SHA384",
		"TLS 1.3 suites are unaffected: " .. tostring(v.cipher))
	v = s_client({ "-tls1_2", "-cipher", "AES256-SHA" })
	ok(v.status ~= 0 and v.hs == 0, "a TLS 1.2 client with no shared cipher is refused (handshake 0)")
	server_ctx:free()

	server_ctx = ctx.server({ A })
	v = s_client({ "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0" })
	ok(v.status ~= 0 and v.version ~= "TLSv1.1", "TLS 1.1 is refused")
	v = s_client({ "-tls1_2" })
	ok(v.status == 0 and v.version == "TLSv1.2", "TLS 1.2 is accepted")
	v = s_client({ "-tls1_3" })
	ok(v.status == 0 and v.version == "TLSv1.3", "TLS 1.3 is accepted")
	server_ctx:free()
end
host.close(lfd)

-- ------------------------------------------------------------ tls.so client
local function free_port()
	local fd, p = host.listen()
	host.close(fd)
	return p
end

-- start `openssl s_server ARGS... -accept PORT`; returns pid, port, outfile
local function s_server(args)
	local p = free_port()
	local out = os.tmpname()
	local argv = { lib.openssl, "s_server", "-accept", tostring(p), "-naccept", "1" }
	for _, a in ipairs(args) do
		argv[#argv + 1] = a
	end
	local pid = host.spawn(argv, out)
	local ready = lib.wait(function()
		local f = io.open(out, "rb")
		local s = f and f:read("a") or ""
		if f then
			f:close()
		end
		return s:find("ACCEPT", 1, true) ~= nil
	end, 10000)
	ok(ready, "openssl s_server is listening on " .. p)
	return pid, p, out
end

local function finish(pid, out)
	local status
	lib.wait(function()
		status = host.wait(pid)
		return status ~= nil
	end, 10000)
	local text = lib.readfile(out)
	os.remove(out)
	return text, status
end

do
	local client = ctx.client()
	local pid, p, out = s_server { "-cert", lib.certdir .. "/b.crt", "-key", lib.certdir .. "/b.key",
		"-alpn", "h2", "-www" }
	local fd = host.connect(p)
	local c = lib.open(client, fd, "localhost2", lib.wire { "http/1.1", "h2" })
	lib.start(c)
	ok(lib.wait(function() return c.hs ~= -1 end), "handshake with s_server finishes")
	ok(c.hs == 1 and c.alpn == "h2", "client against s_server: 1, alpn h2")
	local w = tls.write(c.t, "GET / HTTP/1.0\r\n\r\n")
	ok(w == true, "request written")
	local line = lib.read(c, "\n")
	eq(line, "HTTP/1.0 200 ok\r\n", "s_server's status line")
	local page = {}
	repeat
		line = lib.read(c, "\n")
		page[#page + 1] = line
	until line == nil or line:find("</HTML>", 1, true)
	page = table.concat(page)
	ok(page:find("Ciphers supported", 1, true) ~= nil and line ~= nil,
		"the whole status page arrives, line by line (" .. #page .. " bytes)")
	tls.close(c.t)
	lib.drop(c)
	local text = finish(pid, out)
	ok(text:find("ACCEPT", 1, true) ~= nil, "s_server ran")

	-- the default client does not verify: an expired certificate is fine
	pid, p, out = s_server { "-cert", lib.pkidir .. "/expired.crt", "-key", lib.pkidir .. "/expired.key", "-www" }
	fd = host.connect(p)
	c = lib.open(client, fd, "localhost")
	lib.start(c)
	lib.wait(function() return c.hs ~= -1 end)
	ok(c.hs == 1 and c.alpn == "", "expired certificate accepted by the default client; alpn \"\"")
	tls.write(c.t, "GET / HTTP/1.0\r\n\r\n")
	eq(lib.read(c, "\n"), "HTTP/1.0 200 ok\r\n", "and data flows")
	tls.close(c.t)
	lib.drop(c)
	finish(pid, out)

	-- a verifying client refuses the same server
	local v = ctx.client { verify = true, ca = lib.pki("ca.crt") }
	pid, p, out = s_server { "-cert", lib.pkidir .. "/expired.crt", "-key", lib.pkidir .. "/expired.key", "-www" }
	fd = host.connect(p)
	c = lib.open(v, fd, "localhost")
	lib.start(c)
	lib.wait(function() return c.hs ~= -1 end)
	ok(c.hs == 0 and c.err == lib.ERR_TLS, "verifying client: expired certificate -> 0, TLS error")
	ok(host.logs():find("expired", 1, true) ~= nil, "the log names the reason")
	tls.close(c.t)
	lib.drop(c)
	finish(pid, out)
	v:free()

	-- a plaintext server: the handshake fails with a TLS error, not a hang
	local lfd2, p2 = host.listen()
	local accepted
	lib.on_accept = function(afd)
		accepted = afd
		host.rawsend(afd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
	end
	fd = host.connect(p2)
	c = lib.open(client, fd, "localhost")
	lib.start(c)
	lib.wait(function() return c.hs ~= -1 end)
	ok(c.hs == 0 and c.err == lib.ERR_TLS, "handshake against a plaintext server: 0, TLS error")
	host.logs()
	tls.close(c.t)
	lib.drop(c)
	if accepted then
		host.close(accepted)
	end
	host.close(lfd2)
	client:free()
end
