import json
import boto3

s3 = boto3.client('s3')

def lambda_handler(event, context):
    """A function to serialize target data from S3 (forgot to base64-encode the image)"""

    key = event['s3_key']
    bucket = event['s3_bucket']

    s3.download_file(bucket, key, "/tmp/image.png")

    with open("/tmp/image.png", "rb") as f:
        image_data = f.read()

    return {
        'statusCode': 200,
        'body': {
            "image_data": image_data,
            "s3_bucket": bucket,
            "s3_key": key,
            "inferences": []
        }
    }
