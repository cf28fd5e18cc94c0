-- silly face: module shape, argument checks, ctx.server errors, object
-- lifetimes, push ownership -- everything that needs no TLS peer.
local lib = require "lib"
local tls, ctx = lib.tls, lib.ctx
local eq, raises, ok = lib.eq, lib.raises, lib.ok

local A, B, DEFAULT = lib.pair("a"), lib.pair("b"), lib.pair("default")

-- ------------------------------------------------------------ modules
do
	for _, name in ipairs { "client", "server", "free" } do
		ok(type(ctx[name]) == "function", "ctx." .. name .. " is a function")
	end
	for _, name in ipairs { "open", "close", "read", "write", "handshake", "push", "size" } do
		ok(type(tls[name]) == "function", "tls." .. name .. " is a function")
	end
	ok(require "silly.tls.ctx" == ctx and require "silly.tls.tls" == tls,
		"both modules load from the one tls.so (ctx.so links to it)")
	local mt = debug.getregistry()["silly.tls.ctx"]
	ok(mt and mt.__index == ctx and type(mt.__gc) == "function",
		"metatable silly.tls.ctx: __index = module, __gc")
	mt = debug.getregistry()["silly.tls.tls"]
	ok(mt and mt.__index == tls and type(mt.__gc) == "function",
		"metatable silly.tls.tls: __index = module, __gc")
end

-- ------------------------------------------------------------ ctx.server
do
	local c, err = ctx.server({ A })
	ok(c ~= nil and err == nil, "ctx.server with one certificate")
	ok(getmetatable(c) == debug.getregistry()["silly.tls.ctx"], "ctx userdata has the ctx metatable")
	c:free()

	c = ctx.server({ A, B, DEFAULT }, nil, lib.wire { "h2", "http/1.1" })
	ok(c ~= nil, "ctx.server with three certificates and ALPN")
	ctx.free(c)

	ok(ctx.server({ lib.pair("default") }) ~= nil, "a PKCS#1 (RSA PRIVATE KEY) key is accepted")
	ok(ctx.server({ { cert = lib.pki("chained-full.crt"), key = lib.pki("chained.key") } }) ~= nil,
		"a leaf followed by its chain is accepted")
	ok(ctx.server({ A }, nil, "") ~= nil, "an empty ALPN string means no ALPN")

	local function fails(certs, ciphers, want, msg)
		local c2, e = ctx.server(certs, ciphers)
		eq(c2, nil, msg .. " (no ctx)")
		eq(e, want, msg)
	end
	fails({}, nil, "no certificate", "no certificate")
	fails({ { cert = "garbage", key = A.key } }, nil, "PEM_read_bio_X509 fail", "certificate not PEM")
	fails({ { cert = "", key = A.key } }, nil, "PEM_read_bio_X509 fail", "empty certificate")
	fails({ { cert = lib.pki("garbage.pem"), key = A.key } }, nil, "PEM_read_bio_X509 fail",
		"certificate file of words")
	fails({ { cert = A.cert, key = "garbage" } }, nil, "PEM_read_bio_PrivateKey fail", "key not PEM")
	fails({ { cert = A.cert, key = "" } }, nil, "PEM_read_bio_PrivateKey fail", "empty key")
	fails({ { cert = lib.pki("leaf.crt"), key = lib.pki("leaf.enc.key") } }, nil,
		"PEM_read_bio_PrivateKey fail", "encrypted key (never prompts for a password)")
	fails({ { cert = A.cert, key = B.key } }, nil, "SSL_CTX_check_private_key fail",
		"key of another certificate")
	fails({ { cert = A.cert, key = lib.pki("ec.key") } }, nil,
		"SSL_CTX_check_private_key fail", "key of another type")
	local weak = lib.pair("weak")
	fails({ weak }, nil, "SSL_CTX_use_certificate fail", "certificate refused by the security level")
	fails({ { cert = A.cert .. weak.cert, key = A.key } }, nil, "SSL_CTX_add_extra_chain_cert fail",
		"chain certificate refused by the security level")
	fails({ { cert = A.cert .. "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
		key = A.key } }, nil, "PEM_read_bio_X509 fail", "a malformed PEM block after the leaf")
	ok(ctx.server({ { cert = A.cert .. "trailing words\n", key = A.key } }) ~= nil,
		"text after the leaf outside PEM blocks is ignored")
	fails({ A, { cert = "garbage", key = "garbage" } }, nil, "PEM_read_bio_X509 fail",
		"an error in the second entry")
	local logs = host.logs()
	ok(logs:find("[tls] server certificate setup failed: certificate", 1, true) ~= nil,
		"the detailed reason is logged")

	-- ciphers (TLS <= 1.2 list)
	fails({ A }, "NOT-A-CIPHER", "SSL_CTX_set_cipher_list", "unknown cipher list")
	fails({ A }, "TLS_AES_128_GCM_SHA256", "SSL_CTX_set_cipher_list", "a TLS 1.3 suite name is not a TLS 1.2 cipher")
	fails({ A }, 42, "SSL_CTX_set_cipher_list", "a number is taken as a (bad) cipher list")
	fails({ weak }, "NOT-A-CIPHER", "SSL_CTX_use_certificate fail",
		"certificate errors come before cipher-list errors")
	ok(ctx.server({ A }, "ECDHE-RSA-AES128-GCM-SHA256") ~= nil, "a valid TLS 1.2 cipher list")
	ok(ctx.server({ A }, "ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256") ~= nil,
		"a mixed list keeps its TLS 1.2 names")
	host.logs()

	-- argument errors raise, before anything else happens
	raises(function() ctx.server() end, "table expected", "certs missing")
	raises(function() ctx.server("x") end, "table expected", "certs not a table")
	raises(function() ctx.server({ 42 }) end, "certs[1] must be a table", "entry not a table")
	raises(function() ctx.server({ { key = A.key } }) end, "certs[1].cert must be a string", "cert missing")
	raises(function() ctx.server({ A, { cert = B.cert, key = {} } }) end,
		"certs[2].key must be a string", "key not a string")
	raises(function() ctx.server({ A }, {}) end, "string expected", "ciphers not a string")
	raises(function() ctx.server({ A }, nil, {}) end, "string expected", "alpn not a string")
	local bad_alpn, e = ctx.server({ A }, nil, "\5h2")
	ok(bad_alpn == nil and e:find("ALPN", 1, true) ~= nil, "a malformed ALPN wire list is refused: " .. tostring(e))
	host.logs()
end

-- ------------------------------------------------------------ ctx.client
do
	local c = ctx.client()
	ok(c ~= nil, "ctx.client()")
	ok(c:free() == nil, "ctx:free() through __index")
	ok(pcall(ctx.free, c), "ctx.free twice is a no-op")
	raises(function() tls.open(c, 1) end, "silly.tls.ctx expected", "tls.open with a freed ctx raises")
	raises(function() ctx.free({}) end, "silly.tls.ctx expected", "ctx.free of a table raises")
	raises(function() ctx.free(tls) end, "silly.tls.ctx expected", "ctx.free of a module raises")
	raises(function() ctx.client(42) end, "table expected", "ctx.client(42) raises")
	local v, err = ctx.client { verify = true, ca = "garbage" }
	ok(v == nil and type(err) == "string" and err ~= "", "verify with a CA that is not PEM: nil, " .. tostring(err))
	ok(ctx.client { verify = true, ca = lib.pki("ca.crt") } ~= nil, "ctx.client{verify=true, ca=PEM}")
	ok(ctx.client { verify = true } ~= nil, "ctx.client{verify=true} (system store)")
	ok(ctx.client { verify = false, ca = "ignored" } ~= nil, "ctx.client{verify=false}")
end

-- ------------------------------------------------------------ tls objects
do
	local cc = ctx.client()
	local a, b = host.socketpair()
	raises(function() tls.open() end, "silly.tls.ctx expected", "tls.open without ctx")
	raises(function() tls.open(cc) end, "number expected", "tls.open without fd")
	raises(function() tls.open(cc, "x") end, "number expected", "tls.open with a bad fd")
	raises(function() tls.open(cc, a, nil, {}) end, "string expected", "tls.open with a bad alpn")
	raises(function() tls.open(cc, a, nil, "\3h2") end, "invalid ALPN protocol list", "malformed client ALPN")
	raises(function() tls.open(cc, a, nil, "\0") end, "invalid ALPN protocol list", "ALPN with an empty name")
	local t = tls.open(cc, a, 12345, "") -- numeric hostname coerced; "" = no ALPN
	ok(getmetatable(t) == debug.getregistry()["silly.tls.tls"], "tls userdata has the tls metatable")
	eq(tls.size(t), 0, "size of a fresh tls is 0")
	eq(t:size(), 0, "methods through __index")
	local d, n = tls.read(t, 1)
	ok(d == nil and n == 0, "read(1) on an empty buffer: nil, 0")
	d, n = tls.read(t, "\n")
	ok(d == nil and n == 0, "read(delim) on an empty buffer: nil, 0")
	raises(function() tls.read(t, "ab") end, "delimiter length must be 1", "two-byte delimiter")
	raises(function() tls.read(t, "") end, "delimiter length must be 1", "empty delimiter")
	raises(function() tls.read(t, {}) end, "invalid read argument type", "read({})")
	raises(function() tls.read(t) end, "invalid read argument type", "read()")
	raises(function() tls.write(t, 42) end, "invalid data type", "write(number)")
	raises(function() tls.write(t) end, "invalid data type", "write()")
	raises(function() tls.write(t, {}) end, "table must not be empty", "write({})")
	raises(function() tls.write(t, { "a", {} }) end, "piece 2: string expected", "write with a table piece")
	local before = select(2, host.sendinfo(a))
	local wok, werr = tls.write(t, "early")
	ok(wok == false and werr == lib.ERR_TLS, "write before the handshake: false, TLS error")
	eq(select(2, host.sendinfo(a)), before, "a failed write sends nothing")
	ok(host.logs():find("handshake is not complete", 1, true) ~= nil, "and logs why")
	raises(function() tls.handshake(cc) end, "silly.tls.tls expected", "handshake(ctx)")
	raises(function() tls.size(nil) end, "silly.tls.tls expected", "size(nil)")
	raises(function() tls.read(io.stdout, 1) end, "silly.tls.tls expected", "read(another userdata)")
	local lp = host.dup("x")
	raises(function() tls.read(lp, 1) end, "silly.tls.tls expected",
		"read(light userdata) raises instead of dereferencing it")
	host.free(lp)

	-- close, then every call but close raises the type error
	ok(tls.close(t) == nil, "close")
	ok(pcall(tls.close, t), "close twice is a no-op")
	ok(pcall(getmetatable(t).__gc, t), "__gc after close is a no-op")
	for _, f in ipairs { "read", "write", "handshake", "size" } do
		raises(function() tls[f](t, 1) end, "silly.tls.tls expected", f .. " after close raises")
	end
	local blocks = host.mem()
	local p, sz = host.dup("ciphertext")
	raises(function() tls.push(t, p, sz) end, "silly.tls.tls expected", "push after close raises")
	eq(host.mem(), blocks, "push after close still frees the buffer")
	host.close(a)
	host.close(b)
	cc:free()
end

-- ------------------------------------------------------------ push
do
	local sc = ctx.server({ A })
	local a, b = host.socketpair()
	local t = tls.open(sc, b)
	local blocks = host.mem()
	local p, sz = host.dup("")
	eq(tls.push(t, p, sz), 0, "push of an empty buffer returns 0")
	eq(host.mem(), blocks, "push freed the empty buffer")
	eq(tls.push(t, nil, 0), 0, "push(nil, 0) returns 0")
	local n = tls.push(t, "a string is not a buffer", 24)
	ok(math.type(n) == "integer" and n == 0, "push of a Lua string neither frees nor feeds it")
	p, sz = host.dup("x")
	raises(function() tls.push(t, p, -1) end, "size must be a non-negative integer", "negative size")
	eq(host.mem(), blocks, "push with a bad size frees the buffer")
	p = host.dup("x")
	raises(function() tls.push(t, p, "x") end, "size must be a non-negative integer", "size not a number")
	eq(host.mem(), blocks, "push with a size that is not a number frees the buffer")
	p = host.dup("x")
	raises(function() tls.push(nil, p, 1) end, "silly.tls.tls expected", "push to nil")
	eq(host.mem(), blocks, "push to a non-tls frees the buffer")
	-- a light userdata of NULL with a size: nothing to read, nothing to free
	eq(tls.push(t, host.null(), 100), 0, "push(NULL light userdata, 100) feeds nothing")

	-- garbage ciphertext: push swallows the error, handshake reports it
	p, sz = host.dup(string.rep("\22\3\1\0\5garbage", 10))
	n = tls.push(t, p, sz)
	ok(math.type(n) == "integer" and n == 0, "push of garbage returns 0")
	eq(host.mem(), blocks, "push of garbage frees the buffer")
	local r, err = tls.handshake(t)
	ok(r == 0 and err == lib.ERR_TLS, "handshake after garbage: 0, TLS error")
	local logs = host.logs()
	ok(logs:find("^%[tls%] openssl fd:" .. b .. " error: ") ~= nil, "the reason is logged: " .. logs:gsub("\n$", ""))
	local queued, sends = host.sendinfo(b)
	ok(sends == 1, "the handshake flushed the alert (" .. queued .. " bytes queued)")
	r, err = tls.handshake(t)
	ok(r == 0 and err == lib.ERR_TLS, "the failure is latched")
	p, sz = host.dup("more garbage")
	eq(tls.push(t, p, sz), 0, "push after the failure still frees and returns the size")
	eq(host.mem(), blocks, "no block left behind")
	local wok, werr = tls.write(t, "x")
	ok(wok == false and werr == lib.ERR_TLS, "write after the failure: false, TLS error")
	host.logs()
	tls.close(t)

	-- garbage that is not even a TLS record header
	t = tls.open(sc, b)
	p, sz = host.dup("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	tls.push(t, p, sz)
	r, err = tls.handshake(t)
	ok(r == 0 and err == lib.ERR_TLS, "plaintext HTTP to a server: 0, TLS error")
	host.logs()
	tls.close(t)
	host.close(a)
	host.close(b)
	sc:free()
end

-- ------------------------------------------------------------ flush failure
do
	local cc = ctx.client()
	local a, b = host.socketpair()
	local t = tls.open(cc, a, "localhost")
	host.fail_send(a, true)
	local before = host.mem()
	local r, err = tls.handshake(t)
	ok(r == 0 and err == lib.ERR_CLOSED, "handshake whose flush fails: 0, Socket is closed")
	eq(host.mem(), before, "the refused ClientHello buffer was released")
	tls.close(t)
	host.close(a)
	host.close(b)
	t = tls.open(cc, 999) -- not a socket of the host at all
	r, err = tls.handshake(t)
	ok(r == 0 and err == lib.ERR_CLOSED, "handshake on a socket that is gone: 0, Socket is closed")
	t = nil
	collectgarbage()
	cc:free()
end

-- ------------------------------------------------------------ lifetimes
do
	-- objects dropped without close/free are collected without leaks
	local sc = ctx.server({ A, B })
	local a, b = host.socketpair()
	for _ = 1, 50 do
		tls.open(sc, a)
		tls.open(ctx.client(), b, "localhost", lib.wire { "h2" })
	end
	sc = nil
	collectgarbage()
	collectgarbage()
	ok(true, "100 sessions and 51 ctxs collected by the GC")
	host.close(a)
	host.close(b)
end

-- ------------------------------------------------------------ symbols
do
	local so = arg[1]
	if so then
		local f = io.popen("nm -D --defined-only " .. so)
		local names = {}
		for line in f:lines() do
			local kind, name = line:match("^%x*%s+(%a)%s+(%S+)$")
			if kind and kind ~= "A" then
				names[#names + 1] = name
			end
		end
		f:close()
		table.sort(names)
		eq(table.concat(names, " "), "luaopen_silly_tls_ctx luaopen_silly_tls_tls",
			"tls.so exports exactly the two luaopen functions")
		f = io.popen("nm -D --undefined-only " .. so)
		local stray = {}
		for line in f:lines() do
			local name = line:match("U%s+(%S+)")
			if name then
				local base = name:gsub("@.*", "")
				if not (base:match("^lua") or base:match("^silly_")
					or name:match("@OPENSSL_3") or name:match("@GLIBC") or name:match("@GCC")
					or base:match("^_") or base == "environ") then
					stray[#stray + 1] = name
				end
			end
		end
		f:close()
		eq(table.concat(stray, " "), "",
			"tls.so imports only lua*, silly_*, libc, libgcc and OpenSSL 3 symbols")
	end
end
