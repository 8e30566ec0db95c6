"""The three functions in one file, as the course's submission asks (lambda.py)."""
import json
import base64
import boto3

s3 = boto3.client('s3')
runtime = boto3.client('runtime.sagemaker')

ENDPOINT = "image-classification-2021-11-20-23-59-22-151"
THRESHOLD = .93


def serialize_image_data(event, context):
    """A function to serialize target data from S3"""
    key = event['s3_key']
    bucket = event['s3_bucket']
    s3.download_file(bucket, key, "/tmp/image.png")
    with open("/tmp/image.png", "rb") as f:
        image_data = base64.b64encode(f.read())
    return {
        'statusCode': 200,
        'body': {
            "image_data": image_data,
            "s3_bucket": bucket,
            "s3_key": key,
            "inferences": []
        }
    }


def classify_image(event, context):
    """A function to classify the image with the SageMaker endpoint"""
    image = base64.b64decode(event['image_data'])
    response = runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType='image/png', Body=image)
    event["inferences"] = json.loads(response['Body'].read().decode('utf-8'))
    return {
        'statusCode': 200,
        'body': event
    }


def filter_inferences(event, context):
    """A function to filter low-confidence inferences"""
    inferences = event['inferences']
    meets_threshold = max(inferences) > THRESHOLD
    if not meets_threshold:
        raise("THRESHOLD_CONFIDENCE_NOT_MET")
    return {
        'statusCode': 200,
        'body': json.dumps(event)
    }
