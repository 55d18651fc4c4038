"""boto3 against Hood's S3 endpoint (driven by crates/hood/tests/storage_e2e.rs).

Usage: boto3_suite.py ENDPOINT ACCESS_KEY SECRET WORKDIR
Prints one JSON object of what it observed; the Rust test asserts on it.
"""
import hashlib
import json
import os
import sys

from botocore.exceptions import ClientError

import hood_s3

endpoint, access_key, secret, workdir = sys.argv[1:5]
s3 = hood_s3.client(endpoint, access_key, secret)


def digest_file(path, algorithm="sha256"):
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def code(call):
    try:
        call()
        return "ok"
    except ClientError as e:
        return e.response["Error"]["Code"]


out = {}
big = os.path.join(workdir, "big.bin")
s3.create_bucket(Bucket="data")
out["buckets"] = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
# 200 MB: boto3 uploads it in 8 MB parts, ten at a time.
s3.upload_file(big, "data", "dir/big.bin")
head = s3.head_object(Bucket="data", Key="dir/big.bin")
out["head_length"] = head["ContentLength"]
ranged = s3.get_object(Bucket="data", Key="dir/big.bin", Range="bytes=100000000-100001023")
out["range_status"] = ranged["ResponseMetadata"]["HTTPStatusCode"]
out["range_content_range"] = ranged["ContentRange"]
with open(big, "rb") as f:
    f.seek(100000000)
    out["range_matches"] = ranged["Body"].read() == f.read(1024)
down = os.path.join(workdir, "big.down")
s3.download_file("data", "dir/big.bin", down)
out["download_matches"] = digest_file(down) == digest_file(big)
os.remove(down)
s3.copy_object(Bucket="data", Key="copy.bin", CopySource={"Bucket": "data", "Key": "dir/big.bin"})
copied = s3.get_object(Bucket="data", Key="copy.bin", Range="bytes=0-1048575")["Body"].read()
with open(big, "rb") as f:
    out["copy_matches"] = copied == f.read(1048576)
listed = s3.list_objects_v2(Bucket="data", Delimiter="/")
out["listed_keys"] = [o["Key"] for o in listed.get("Contents", [])]
out["listed_prefixes"] = [p["Prefix"] for p in listed.get("CommonPrefixes", [])]
s3.delete_object(Bucket="data", Key="copy.bin")
out["copy_after_delete"] = code(lambda: s3.head_object(Bucket="data", Key="copy.bin"))
out["delete_nonempty_bucket"] = code(lambda: s3.delete_bucket(Bucket="data"))
# ETags are the MD5 of the bytes, which SDKs compare with their own; a
# multipart object's is the MD5 of the whole.
small = b"hello, etag"
small_md5 = '"%s"' % hashlib.md5(small).hexdigest()
put = s3.put_object(Bucket="data", Key="etag.txt", Body=small)
listed = s3.list_objects_v2(Bucket="data", Prefix="etag.txt")["Contents"]
out["etags_are_md5"] = {
    "put": put["ETag"] == small_md5,
    "head": s3.head_object(Bucket="data", Key="etag.txt")["ETag"] == small_md5,
    "list": [o["ETag"] for o in listed] == [small_md5],
    "multipart": head["ETag"] == '"%s"' % digest_file(big, "md5"),
}
s3.delete_object(Bucket="data", Key="etag.txt")
# An upload aborted leaves nothing; a part under 5 MiB cannot precede another.
upload = s3.create_multipart_upload(Bucket="data", Key="aborted.bin")["UploadId"]
part1 = s3.upload_part(Bucket="data", Key="aborted.bin", UploadId=upload, PartNumber=1, Body=b"x" * 1024)
part2 = s3.upload_part(Bucket="data", Key="aborted.bin", UploadId=upload, PartNumber=2, Body=b"y" * 10)
out["etags_are_md5"]["part"] = part1["ETag"] == '"%s"' % hashlib.md5(b"x" * 1024).hexdigest()
out["parts_listed"] = [p["PartNumber"] for p in s3.list_parts(Bucket="data", Key="aborted.bin", UploadId=upload)["Parts"]]


def complete(parts):
    return code(
        lambda: s3.complete_multipart_upload(
            Bucket="data", Key="aborted.bin", UploadId=upload, MultipartUpload={"Parts": parts}
        )
    )


out["wrong_etag_completion"] = complete([{"PartNumber": 1, "ETag": "\"beef\""}])
out["small_part_completion"] = complete(
    [{"PartNumber": 1, "ETag": part1["ETag"]}, {"PartNumber": 2, "ETag": part2["ETag"]}]
)
# Uploads in progress are listed (by key, then upload), one page at a time.
other = s3.create_multipart_upload(Bucket="data", Key="another.bin")["UploadId"]


def pending(**page):
    listed = s3.list_multipart_uploads(Bucket="data", **page)
    return {
        "uploads": [[u["Key"], u["UploadId"] == upload or u["UploadId"] == other] for u in listed.get("Uploads", [])],
        "truncated": listed["IsTruncated"],
        "next": listed.get("NextKeyMarker"),
    }


out["uploads_listed"] = pending()
out["uploads_first_page"] = pending(MaxUploads=1)
out["uploads_second_page"] = pending(MaxUploads=1, KeyMarker="another.bin")
out["uploads_prefixed"] = pending(Prefix="abo")
s3.abort_multipart_upload(Bucket="data", Key="another.bin", UploadId=other)
s3.abort_multipart_upload(Bucket="data", Key="aborted.bin", UploadId=upload)
out["aborted_upload_part"] = code(
    lambda: s3.upload_part(Bucket="data", Key="aborted.bin", UploadId=upload, PartNumber=3, Body=b"z")
)
out["aborted_object"] = code(lambda: s3.head_object(Bucket="data", Key="aborted.bin"))
out["aborted_object_get"] = code(lambda: s3.get_object(Bucket="data", Key="aborted.bin"))
out["uploads_after_abort"] = pending()
out["missing_bucket"] = code(lambda: s3.get_object(Bucket="no-such-bucket", Key="x"))
out["missing_key"] = code(lambda: s3.get_object(Bucket="data", Key="nothing-here"))
print(json.dumps(out))
