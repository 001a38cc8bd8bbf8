"""The S3 servers of tests/support/s3servers.py do what the S3 driver's
tests rely on: each starts, serves objects, multipart uploads and presigned
GETs through botocore (path style, SigV4), and stops every process it
started.  Ceph's RADOS Gateway also proves it is strict like AWS: it refuses
a wrong signature, an expired presigned URL and a chunked body without a
length."""

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.support.s3servers import CephRGW, MotoServer, botocoreClient, skipUnlessAvailable

botocore = pytest.importorskip("botocore")
from botocore.auth import S3SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

MiB = 1 << 20


@pytest.fixture(scope="module")
def servers():
    """Starts each kind of server once for the module, when first asked."""
    started = {}

    def get(cls):
        if cls not in started:
            skipUnlessAvailable(cls)
            started[cls] = cls().start()
        return started[cls]

    yield get
    errors = []
    for server in started.values():
        try:
            server.stop()
        except Exception as e:  # stop the others all the same
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture(params=[MotoServer, CephRGW], ids=["moto", "rgw"])
def server(request, servers):
    return servers(request.param)


@pytest.fixture
def rgw(servers):
    return servers(CephRGW)


_counter = iter(range(1000000))


@pytest.fixture
def bucket(server):
    return server.createBucket("test-%d-%d" % (os.getpid(), next(_counter)))


def status(url, method="GET", data=None, headers=None):
    """HTTP status and body of one request with urllib."""
    req = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_objects(server, bucket):
    """Put, get, head, ranged get, list (prefix and delimiter), delete."""
    client = server.client()
    client.put_object(Bucket=bucket, Key="dir/a", Body=b"alpha", ContentType="application/octet-stream")
    client.put_object(Bucket=bucket, Key="dir/sub/b", Body=b"beta", ContentType="text/plain")
    client.put_object(Bucket=bucket, Key="other", Body=b"", ContentType="application/octet-stream")

    assert client.get_object(Bucket=bucket, Key="dir/a")["Body"].read() == b"alpha"
    head = client.head_object(Bucket=bucket, Key="dir/sub/b")
    assert head["ContentLength"] == 4
    assert head["ContentType"] == "text/plain"
    ranged = client.get_object(Bucket=bucket, Key="dir/a", Range="bytes=1-3")
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert ranged["Body"].read() == b"lph"

    listed = client.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["dir/a", "dir/sub/b", "other"]
    listed = client.list_objects_v2(Bucket=bucket, Prefix="dir/", Delimiter="/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/a"]
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["dir/sub/"]

    client.delete_object(Bucket=bucket, Key="dir/a")
    with pytest.raises(ClientError) as caught:
        client.get_object(Bucket=bucket, Key="dir/a")
    assert caught.value.response["Error"]["Code"] == "NoSuchKey"
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == ["dir/sub/b", "other"]


def test_multipart(server, bucket):
    """Two 5 MiB parts and a small last one make one object."""
    client = server.client()
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), b"the small last part"]
    upload = client.create_multipart_upload(Bucket=bucket, Key="big", ContentType="application/octet-stream")
    uploadId = upload["UploadId"]
    etags = []
    for number, data in enumerate(parts, 1):
        answer = client.upload_part(Bucket=bucket, Key="big", UploadId=uploadId, PartNumber=number, Body=data)
        etags.append(answer["ETag"])
        assert answer["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    listed = client.list_parts(Bucket=bucket, Key="big", UploadId=uploadId)
    assert [p["Size"] for p in listed["Parts"]] == [len(p) for p in parts]
    client.complete_multipart_upload(
        Bucket=bucket,
        Key="big",
        UploadId=uploadId,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    whole = b"".join(parts)
    got = client.get_object(Bucket=bucket, Key="big")
    assert got["ContentLength"] == len(whole)
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(whole).digest()
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    # An aborted upload leaves nothing behind.
    uploadId = client.create_multipart_upload(Bucket=bucket, Key="aborted")["UploadId"]
    client.upload_part(Bucket=bucket, Key="aborted", UploadId=uploadId, PartNumber=1, Body=b"x")
    client.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=uploadId)
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == ["big"]


def test_presignedGet(server, bucket):
    client = server.client()
    client.put_object(Bucket=bucket, Key="blob", Body=b"presigned content", ContentType="application/octet-stream")
    url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "blob"}, ExpiresIn=1200)
    assert url.startswith(server.endpoint + "/" + bucket + "/blob?")
    assert "X-Amz-Signature=" in url
    assert status(url) == (200, b"presigned content")


def test_serverSideCopy(server, bucket):
    client = server.client()
    client.put_object(Bucket=bucket, Key="from", Body=b"copied", ContentType="application/octet-stream")
    client.copy_object(Bucket=bucket, Key="to", CopySource={"Bucket": bucket, "Key": "from"})
    assert client.get_object(Bucket=bucket, Key="to")["Body"].read() == b"copied"


def test_requestLog(server, bucket):
    """C{requests(bucket)} lists what the server logged for that bucket
    alone, in order: method, path within the bucket with its query, status
    (a 204 and a 404 too: werkzeug colours those lines, even in a file)."""
    client = server.client()
    other = server.createBucket(bucket + "-other")
    client.put_object(Bucket=other, Key="elsewhere", Body=b"x")
    client.put_object(Bucket=bucket, Key="dir/a b", Body=b"logged")
    upload = client.create_multipart_upload(Bucket=bucket, Key="multi")["UploadId"]
    client.abort_multipart_upload(Bucket=bucket, Key="multi", UploadId=upload)
    client.delete_object(Bucket=bucket, Key="dir/a b")
    with pytest.raises(ClientError):
        client.head_object(Bucket=bucket, Key="missing")
    expected = [
        ("PUT", "/dir/a%20b", 200),
        ("POST", "/multi?uploads", 200),
        ("DELETE", "/multi?uploadId=" + urllib.parse.quote(upload, safe=""), 204),
        ("DELETE", "/dir/a%20b", 204),
        ("HEAD", "/missing", 404),
    ]
    deadline = time.monotonic() + 20
    while True:
        logged = server.requests(bucket)
        if logged[-len(expected):] == expected or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # polling: radosgw logs a request a little after answering it
    assert logged[-len(expected):] == expected, logged
    assert [r for r in server.requests(other) if r[1] == "/elsewhere"] == [("PUT", "/elsewhere", 200)]


def test_serverSideEncryptionHeader(server, bucket):
    """A PUT asking for SSE-S3 (the s3_encrypt setting) is accepted over
    http:// (RGW needs rgw_crypt_require_ssl = false for that)."""
    client = server.client()
    client.put_object(
        Bucket=bucket, Key="enc", Body=b"secret", ContentType="application/octet-stream", ServerSideEncryption="AES256"
    )
    assert client.get_object(Bucket=bucket, Key="enc")["Body"].read() == b"secret"


def test_rgwRefusesWrongSecret(rgw):
    """RGW verifies SigV4 signatures: a wrong secret, or no signature at
    all, is refused with 403."""
    bucket = rgw.createBucket("signatures")
    good = rgw.client()
    good.put_object(Bucket=bucket, Key="k", Body=b"v", ContentType="application/octet-stream")
    bad = botocoreClient(rgw.endpoint, rgw.region, rgw.accessKey, rgw.secretKey[:-1] + "X")
    for call in (
        lambda: bad.get_object(Bucket=bucket, Key="k"),
        lambda: bad.put_object(Bucket=bucket, Key="k2", Body=b"v", ContentType="application/octet-stream"),
        lambda: bad.list_objects_v2(Bucket=bucket),
    ):
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert caught.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    unknown = botocoreClient(rgw.endpoint, rgw.region, "NOSUCHKEY0000000000X", rgw.secretKey)
    with pytest.raises(ClientError) as caught:
        unknown.list_objects_v2(Bucket=bucket)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert status("%s/%s/k" % (rgw.endpoint, bucket))[0] == 403  # anonymous
    # A presigned URL whose signature was tampered with.
    url = good.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=600)
    assert status(url) == (200, b"v")
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    query["X-Amz-Signature"] = ["0" * 64]
    tampered = parts._replace(query=urllib.parse.urlencode(query, doseq=True)).geturl()
    assert status(tampered)[0] == 403
    assert good.list_objects_v2(Bucket=bucket)["KeyCount"] == 1


def test_rgwRefusesExpiredPresignedURL(rgw):
    """A presigned GET works until it expires, then is refused (403)."""
    bucket = rgw.createBucket("expiry")
    client = rgw.client()
    client.put_object(Bucket=bucket, Key="k", Body=b"v", ContentType="application/octet-stream")
    url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=2)
    assert status(url) == (200, b"v")
    deadline = time.monotonic() + 20
    while True:
        code, body = status(url)
        if code != 200:
            break
        assert time.monotonic() < deadline, "a presigned URL valid for 2 s still works after 20 s"
        time.sleep(0.25)  # polling until the URL's expiry has passed
    assert code == 403
    assert b"AccessDenied" in body or b"RequestExpired" in body or b"Expired" in body


def test_rgwRefusesChunkedBodyWithoutLength(rgw):
    """A correctly signed PUT (UNSIGNED-PAYLOAD) succeeds with a
    Content-Length and is refused with 411 when its body is chunked."""
    bucket = rgw.createBucket("chunked")
    credentials = Credentials(rgw.accessKey, rgw.secretKey)
    netloc = urllib.parse.urlsplit(rgw.endpoint).netloc

    def signedPut(key, headers):
        url = "%s/%s/%s" % (rgw.endpoint, bucket, key)
        request = AWSRequest(method="PUT", url=url, headers=headers)
        request.headers["Content-Type"] = "application/octet-stream"
        _UnsignedPayloadAuth(credentials, "s3", rgw.region).add_auth(request)
        return "/%s/%s" % (bucket, key), dict(request.headers.items())

    connection = http.client.HTTPConnection(netloc, timeout=30)
    try:
        path, headers = signedPut("with-length", {"Content-Length": "5"})
        connection.request("PUT", path, body=b"hello", headers=headers)
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, body

        path, headers = signedPut("chunked", {"Transfer-Encoding": "chunked"})
        connection.request("PUT", path, body=iter([b"hel", b"lo"]), headers=headers, encode_chunked=True)
        response = connection.getresponse()
        body = response.read()
        assert response.status == 411, body
    finally:
        connection.close()
    keys = [o["Key"] for o in rgw.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["with-length"]


def test_rgwStopEndsEveryDaemon():
    """A second cluster beside the module's: stop ends its mon, OSD and
    radosgw, and its endpoint stops answering."""
    skipUnlessAvailable(CephRGW)
    server = CephRGW().start()
    try:
        pids = server.pids()
        assert sorted(pids) == ["mon", "osd", "rgw"]
        assert all(_alive(pid) for pid in pids.values())
        root = server.root
    finally:
        server.stop()
    assert [name for name, pid in pids.items() if _alive(pid)] == []
    assert not os.path.exists(root)
    with pytest.raises(OSError):
        urllib.request.urlopen(server.endpoint, timeout=5)


def test_motoStopEndsTheServer():
    skipUnlessAvailable(MotoServer)
    server = MotoServer().start()
    pid = server.proc.pid
    server.stop()
    assert not _alive(pid)
    with pytest.raises(OSError):
        urllib.request.urlopen(server.endpoint, timeout=5)


class _UnsignedPayloadAuth(S3SigV4Auth):
    """SigV4 with X-Amz-Content-SHA256: UNSIGNED-PAYLOAD.  S3SigV4Auth
    replaces any X-Amz-Content-SHA256 header given to it, and over http://
    it hashes the AWSRequest's body (empty here): RGW then answers 400
    XAmzContentSHA256Mismatch."""

    def payload(self, request):
        return "UNSIGNED-PAYLOAD"


def _alive(pid):
    """Whether the process exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % (pid,)) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

