"""The one boto3 client the S3 test scripts use: Hood's endpoint, a key
Hood issued (or none: `-` makes unsigned requests), path-style buckets."""
import boto3
from botocore import UNSIGNED
from botocore.config import Config


def client(endpoint, access_key, secret):
    if access_key == "-":
        return boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", config=Config(signature_version=UNSIGNED)
        )
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )
