import os
import boto3

table = boto3.resource('dynamodb').Table(os.environ.get('LABELS_TABLE', 'vehicle-labels'))
cloudwatch = boto3.client('cloudwatch')


def lambda_handler(event, context):
    if event['confidence'] < 0:
        raise ValueError(f"confidence out of range: {event['confidence']}")
    table.put_item(Item={'image': event['image'], 'label': event['label']})
    cloudwatch.put_metric_data(
        Namespace='SconesLabels',
        MetricData=[{'MetricName': 'Labelled', 'Value': 1, 'Unit': 'Count',
                     'Dimensions': [{'Name': 'Label', 'Value': event['label']}]}],
    )
    return {'image': event['image'], 'stored': True}
