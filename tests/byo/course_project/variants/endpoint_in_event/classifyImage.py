import json
import base64
import boto3

runtime = boto3.client('runtime.sagemaker')

def lambda_handler(event, context):
    image = base64.b64decode(event['image_data'])
    # The endpoint name is chosen by whoever starts the execution
    response = runtime.invoke_endpoint(EndpointName=event['endpoint'], ContentType='image/png',
                                       Body=image)
    event["inferences"] = json.loads(response['Body'].read().decode('utf-8'))
    return {
        'statusCode': 200,
        'body': event
    }
