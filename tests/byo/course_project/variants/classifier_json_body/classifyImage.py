import json
import base64
import boto3

ENDPOINT = "image-classification-2021-11-20-23-59-22-151"

runtime = boto3.client('runtime.sagemaker')

def lambda_handler(event, context):

    # Decode the image data
    image = base64.b64decode(event['image_data'])

    # Make a prediction:
    response = runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType='image/png', Body=image)
    inferences = response['Body'].read().decode('utf-8')

    # We return the data back to the Step Function (as the course's template does)
    event["inferences"] = json.loads(inferences)
    return {
        'statusCode': 200,
        'body': json.dumps(event)
    }
