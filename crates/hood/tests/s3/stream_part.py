"""Starts a multipart upload, uploads part 1 (5 MiB), then streams part 2
by hand and stops half way, so the test can SIGKILL Hood mid-part.

Usage: stream_part.py ENDPOINT ACCESS_KEY SECRET BUCKET KEY
Prints {"upload_id": ...} once part 2 is half sent, then sleeps.
"""
import http.client
import json
import sys
import time
from urllib.parse import urlparse

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import hood_s3

endpoint, access_key, secret, bucket, key = sys.argv[1:6]
s3 = hood_s3.client(endpoint, access_key, secret)
upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"1" * (5 << 20))
# Half of it is more than Hood buffers before its first write to disk.
size = 24 << 20
url = f"{endpoint}/{bucket}/{key}?partNumber=2&uploadId={upload}"
request = AWSRequest(
    method="PUT",
    url=url,
    headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Length": str(size)},
)
S3SigV4Auth(Credentials(access_key, secret), "s3", "us-east-1").add_auth(request)
target = urlparse(endpoint)
conn = http.client.HTTPConnection(target.hostname, target.port)
conn.putrequest("PUT", urlparse(request.url).path + "?" + urlparse(request.url).query, skip_host=True, skip_accept_encoding=True)
conn.putheader("Host", target.netloc)
for name, value in request.headers.items():
    if name.lower() != "host":
        conn.putheader(name, value)
conn.endheaders()
conn.send(b"2" * (size // 2))
print(json.dumps({"upload_id": upload}), flush=True)
time.sleep(600)
