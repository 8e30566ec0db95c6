"""Container image URIs: the built-in image-classification algorithm and the PyTorch framework.

The ``sagemaker`` SDK's ``image_uris.retrieve`` is used when it is installed (the optional
``cloud`` extra). It is not a default dependency: sagemaker 3.x pulls in mlflow, scipy, pyarrow
and SQLAlchemy, far too much for one lookup. Without it, the per-region ECR accounts below are
used: copied from the SDK's own tables, sagemaker-core 2.27.0
``sagemaker/core/image_uri_config/{image-classification,pytorch}.json``; the AWS page
https://docs.aws.amazon.com/sagemaker/latest/dg-ecr-paths/sagemaker-algo-docker-registry-paths.html
lists the same accounts.
"""

from __future__ import annotations

import logging

from cloud import CloudError

LOG = logging.getLogger(__name__)

IMAGE_CLASSIFICATION_VERSION = "1"  # the algorithm's only image tag
# ECR account of the built-in image-classification algorithm, per region.
IMAGE_CLASSIFICATION_ACCOUNTS = {
    "af-south-1": "455444449433",
    "ap-east-1": "286214385809",
    "ap-northeast-1": "501404015308",
    "ap-northeast-2": "306986355934",
    "ap-northeast-3": "867004704886",
    "ap-south-1": "991648021394",
    "ap-south-2": "628508329040",
    "ap-southeast-1": "475088953585",
    "ap-southeast-2": "544295431143",
    "ap-southeast-3": "951798379941",
    "ap-southeast-4": "106583098589",
    "ca-central-1": "469771592824",
    "ca-west-1": "190319476487",
    "cn-north-1": "390948362332",
    "cn-northwest-1": "387376663083",
    "eu-central-1": "813361260812",
    "eu-central-2": "680994064768",
    "eu-north-1": "669576153137",
    "eu-south-1": "257386234256",
    "eu-south-2": "104374241257",
    "eu-west-1": "685385470294",
    "eu-west-2": "644912444149",
    "eu-west-3": "749696950732",
    "il-central-1": "898809789911",
    "me-central-1": "272398656194",
    "me-south-1": "249704162688",
    "sa-east-1": "855470959533",
    "us-east-1": "811284229777",
    "us-east-2": "825641698319",
    "us-gov-east-1": "237065988967",
    "us-gov-west-1": "226302683700",
    "us-west-1": "632365934929",
    "us-west-2": "433757028032",
}
# Deep Learning Containers (pytorch-training 2.10.0): one account for most regions, these differ.
PYTORCH_DEFAULT_ACCOUNT = "763104351884"
PYTORCH_DEFAULT_REGIONS = frozenset(
    {
        "ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1", "ap-southeast-2",
        "ca-central-1", "eu-central-1", "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3",
        "sa-east-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2",
    }
)  # fmt: skip
PYTORCH_ACCOUNTS = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-east-2": "975050140332",
    "ap-northeast-3": "364406365360",
    "ap-south-2": "772153158452",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ap-southeast-5": "550225433462",
    "ap-southeast-6": "633930458069",
    "ap-southeast-7": "590183813437",
    "ca-west-1": "204538143572",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "eu-central-2": "380420809688",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "me-west-1": "124382933778",
    "mx-central-1": "637423239942",
    "us-gov-east-1": "446045086412",
    "us-gov-west-1": "442386744353",
    **{region: PYTORCH_DEFAULT_ACCOUNT for region in PYTORCH_DEFAULT_REGIONS},
}


class ImageUnavailable(CloudError):
    """No image URI is known for this region or framework version."""


def ecr_host(region: str) -> str:
    """The ECR registry host name of ``region`` (China regions have their own domain)."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"ecr.{region}.{suffix}"


def processor(instance_type: str) -> str:
    """The processor tag: gpu for GPU instance families (ml.p*, ml.g*), else cpu, as the SDK."""
    family = instance_type.removeprefix("ml.").split(".")[0]
    return "gpu" if family[:1] in ("g", "p") else "cpu"


def _sdk_retrieve(**kwargs: str) -> str | None:
    """``image_uris.retrieve`` of whichever sagemaker SDK is installed (2.x or 3.x), else None.

    None too when that SDK does not know the image (sagemaker 2.x stops at PyTorch 2.8).
    """
    try:
        from sagemaker import image_uris  # sagemaker 2.x
    except ImportError:
        try:
            from sagemaker.core import image_uris  # sagemaker 3.x / sagemaker-core
        except ImportError:
            return None
    try:
        return image_uris.retrieve(**kwargs)
    except ValueError as err:  # an older SDK's tables lack this version or region: ours know it
        LOG.info("the sagemaker SDK has no image for %s (%s); using the table", kwargs, err)
        return None


def image_classification_uri(region: str, use_sdk: bool = True) -> str:
    """The built-in image-classification algorithm image (training and inference) in ``region``."""
    if use_sdk:
        uri = _sdk_retrieve(framework="image-classification", region=region)
        if uri:
            LOG.debug("image-classification image from the sagemaker SDK: %s", uri)
            return uri
    account = IMAGE_CLASSIFICATION_ACCOUNTS.get(region)
    if account is None:
        raise ImageUnavailable(
            f"no image-classification image known for region {region}; "
            f"install the sagemaker SDK (pip install 'scones[cloud]') or use one of "
            f"{', '.join(sorted(IMAGE_CLASSIFICATION_ACCOUNTS))}"
        )
    return f"{account}.dkr.{ecr_host(region)}/image-classification:{IMAGE_CLASSIFICATION_VERSION}"


def pytorch_training_uri(
    region: str, version: str, py_version: str, instance_type: str, use_sdk: bool = True
) -> str:
    """The PyTorch training framework image (Deep Learning Container) for ``instance_type``."""
    if use_sdk:
        uri = _sdk_retrieve(
            framework="pytorch",
            region=region,
            version=version,
            py_version=py_version,
            instance_type=instance_type,
            image_scope="training",
        )
        if uri:
            LOG.debug("pytorch training image from the sagemaker SDK: %s", uri)
            return uri
    account = PYTORCH_ACCOUNTS.get(region)
    if account is None:
        raise ImageUnavailable(
            f"no pytorch-training image known for region {region}; "
            "install the sagemaker SDK (pip install 'scones[cloud]')"
        )
    tag = f"{version}-{processor(instance_type)}-{py_version}"
    return f"{account}.dkr.{ecr_host(region)}/pytorch-training:{tag}"
