import json


THRESHOLD = .93


def lambda_handler(event, context):

    # Grab the inferences from the classifier's output (its body)
    inferences = event['body']['inferences']

    meets_threshold = max(inferences) > THRESHOLD

    if meets_threshold:
        pass
    else:
        raise("THRESHOLD_CONFIDENCE_NOT_MET")

    return {
        'statusCode': 200,
        'body': json.dumps(event)
    }
